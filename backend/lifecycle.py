"""The instance state machine: every allowed transition in one table.

Internal states are richer than EC2's six: `impaired` (host unreachable) and `failed` (could not be
deployed) keep what happened instead of pretending the instance was terminated, and `migrating`
(moving to another host) holds capacity on both hosts until the move ends. The front-end maps
them to EC2 names and codes with `ec2_state`, and shows the reason as `stateReason`. A stopped
instance moves too: `relocating` (its disks go to another host; EC2 shows it stopped), or
`moving-to-start` when it was started while its host cannot run it (holding the new host's share;
EC2 shows it pending).
"""
import enum

from .errors import Conflict


class State(str, enum.Enum):
    PENDING = 'pending'            # placed on a host, waiting for a worker to deploy it
    RUNNING = 'running'
    REBOOTING = 'rebooting'        # a reboot was asked, a worker will carry it out
    STOPPING = 'stopping'
    STOPPED = 'stopped'
    SHUTTING_DOWN = 'shutting-down'  # terminated while its domain may still run: holds its capacity
    CLEANING_UP = 'cleaning-up'      # terminated while stopped: EC2's shutting-down, holding nothing
    TERMINATED = 'terminated'
    FAILED = 'failed'              # deploy failed for good; nothing is held any more
    IMPAIRED = 'impaired'          # its host stopped answering; it may still be running there
    MIGRATING = 'migrating'        # moving to `migration_host_id`; running on one host throughout
    RELOCATING = 'relocating'      # stopped, its disks moving to `migration_host_id`
    MOVING_TO_START = 'moving-to-start'   # the same, started meanwhile: it starts there once moved


class Event(str, enum.Enum):
    DEPLOYED = 'deployed'
    DEPLOY_FAILED = 'deploy-failed'
    STOP = 'stop'
    STOPPED = 'stopped'
    START = 'start'
    REBOOT = 'reboot'
    REBOOTED = 'rebooted'
    TERMINATE = 'terminate'
    CLEANED_UP = 'cleaned-up'
    POWERED_OFF = 'powered-off'    # the guest shut itself down, or its domain vanished
    HOST_LOST = 'host-lost'
    HOST_BACK = 'host-back'
    MIGRATE = 'migrate'
    MIGRATED = 'migrated'          # it runs on the target host now, and nothing of it on the source
    MIGRATE_FAILED = 'migrate-failed'   # it still runs where it was
    RECOVER = 'recover'            # its host was fenced: it starts again on another host
    START_ELSEWHERE = 'start-elsewhere'   # started while its host cannot run it: it moves first


S, E = State, Event
TRANSITIONS = {
    (S.PENDING, E.DEPLOYED): S.RUNNING,
    (S.PENDING, E.DEPLOY_FAILED): S.FAILED,
    (S.PENDING, E.TERMINATE): S.SHUTTING_DOWN,
    (S.PENDING, E.HOST_LOST): S.PENDING,
    (S.PENDING, E.START): S.PENDING,
    (S.RUNNING, E.START): S.RUNNING,
    (S.RUNNING, E.STOP): S.STOPPING,
    (S.RUNNING, E.REBOOT): S.REBOOTING,
    (S.RUNNING, E.TERMINATE): S.SHUTTING_DOWN,
    (S.RUNNING, E.POWERED_OFF): S.STOPPED,
    (S.RUNNING, E.HOST_LOST): S.IMPAIRED,
    (S.REBOOTING, E.REBOOTED): S.RUNNING,
    (S.REBOOTING, E.REBOOT): S.REBOOTING,
    (S.REBOOTING, E.STOP): S.STOPPING,
    (S.REBOOTING, E.TERMINATE): S.SHUTTING_DOWN,
    (S.REBOOTING, E.HOST_LOST): S.IMPAIRED,
    (S.REBOOTING, E.POWERED_OFF): S.STOPPED,
    (S.STOPPING, E.STOPPED): S.STOPPED,
    (S.STOPPING, E.STOP): S.STOPPING,
    (S.STOPPING, E.TERMINATE): S.SHUTTING_DOWN,
    (S.STOPPING, E.HOST_LOST): S.IMPAIRED,
    (S.STOPPED, E.START): S.PENDING,
    (S.STOPPED, E.STOP): S.STOPPED,
    (S.STOPPED, E.TERMINATE): S.CLEANING_UP,
    (S.SHUTTING_DOWN, E.CLEANED_UP): S.TERMINATED,
    (S.SHUTTING_DOWN, E.TERMINATE): S.SHUTTING_DOWN,
    (S.CLEANING_UP, E.CLEANED_UP): S.TERMINATED,
    (S.CLEANING_UP, E.TERMINATE): S.CLEANING_UP,
    (S.TERMINATED, E.TERMINATE): S.TERMINATED,
    (S.FAILED, E.TERMINATE): S.TERMINATED,
    (S.IMPAIRED, E.HOST_BACK): S.RUNNING,
    (S.IMPAIRED, E.POWERED_OFF): S.STOPPED,
    (S.IMPAIRED, E.TERMINATE): S.SHUTTING_DOWN,
    (S.IMPAIRED, E.HOST_LOST): S.IMPAIRED,
    (S.RUNNING, E.MIGRATE): S.MIGRATING,
    (S.MIGRATING, E.MIGRATED): S.RUNNING,
    (S.MIGRATING, E.MIGRATE_FAILED): S.RUNNING,
    (S.MIGRATING, E.START): S.MIGRATING,
    (S.IMPAIRED, E.RECOVER): S.PENDING,
    (S.STOPPED, E.MIGRATE): S.RELOCATING,
    (S.RELOCATING, E.MIGRATED): S.STOPPED,
    (S.RELOCATING, E.MIGRATE_FAILED): S.STOPPED,
    (S.RELOCATING, E.STOP): S.RELOCATING,
    (S.RELOCATING, E.START): S.MOVING_TO_START,
    (S.STOPPED, E.START_ELSEWHERE): S.MOVING_TO_START,
    (S.MOVING_TO_START, E.MIGRATED): S.PENDING,
    (S.MOVING_TO_START, E.MIGRATE_FAILED): S.STOPPED,
    (S.MOVING_TO_START, E.START): S.MOVING_TO_START,
}

# States in which the instance holds a host's capacity. Capacity follows the table: a transition
# from a state outside this set into it reserves the instance's share, one out of it frees it, so
# each is taken and given back exactly once (`capacity_change`, `shares`).
HOLDS_CAPACITY = frozenset({S.PENDING, S.RUNNING, S.REBOOTING, S.STOPPING, S.SHUTTING_DOWN, S.IMPAIRED, S.MIGRATING})
# States in which it holds the share of the host it moves to (`migration_host_id`) as well: a
# migrating instance holds both hosts', one moving to start only its new host's.
HOLDS_TARGET_CAPACITY = frozenset({S.MIGRATING, S.MOVING_TO_START})
# States of an instance moving to `migration_host_id`; a move's end (MIGRATED) makes that its host.
MOVING_STATES = frozenset({S.MIGRATING, S.RELOCATING, S.MOVING_TO_START})
# States a worker acts on, and what it does there.
WORK_STATES = frozenset({S.PENDING, S.REBOOTING, S.STOPPING, S.SHUTTING_DOWN, S.CLEANING_UP, *MOVING_STATES})
# States after which nothing more happens to the instance.
FINAL_STATES = frozenset({S.TERMINATED, S.FAILED})

# EC2's names and codes (the low byte of instanceState/code).
_EC2_STATES = {
    S.PENDING: ('pending', 0),
    S.RUNNING: ('running', 16),
    S.REBOOTING: ('running', 16),
    S.IMPAIRED: ('running', 16),
    S.MIGRATING: ('running', 16),
    S.MOVING_TO_START: ('pending', 0),
    S.RELOCATING: ('stopped', 80),
    S.STOPPING: ('stopping', 64),
    S.STOPPED: ('stopped', 80),
    S.SHUTTING_DOWN: ('shutting-down', 32),
    S.CLEANING_UP: ('shutting-down', 32),
    S.TERMINATED: ('terminated', 48),
    S.FAILED: ('terminated', 48),
}


def next_state(current, event):
    """The state `event` leads to from `current`, or Conflict (IncorrectInstanceState)."""
    target = TRANSITIONS.get((State(current), Event(event)))
    if target is None and State(current) in MOVING_STATES:
        raise Conflict('IncorrectInstanceState', 'The instance is moving to another host and cannot '
                       f'{_verb(event)} until the move ends; try again in a moment.')
    if target is None:
        raise Conflict('IncorrectInstanceState',
                       f"The instance is in state '{ec2_state(current)[0]}' and cannot {_verb(event)}.")
    return target


def capacity_change(previous, target):
    """+1 when moving from `previous` to `target` takes a host's capacity, -1 when it frees it, else 0."""
    return (State(target) in HOLDS_CAPACITY) - (State(previous) in HOLDS_CAPACITY)


def shares(state, host_id, target_host_id):
    """{host id: shares} an instance in `state` holds, on its host and the host it moves to."""
    held = {}
    for host, holding in ((host_id, HOLDS_CAPACITY), (target_host_id, HOLDS_TARGET_CAPACITY)):
        if host is not None and State(state) in holding:
            held[host] = held.get(host, 0) + 1
    return held


def can(current, event):
    return (State(current), Event(event)) in TRANSITIONS


def ec2_state(state):
    """(name, code) as EC2 clients expect them."""
    return _EC2_STATES[State(state)]


def _verb(event):
    return {E.STOP: 'be stopped', E.START: 'be started', E.REBOOT: 'be rebooted',
            E.TERMINATE: 'be terminated'}.get(Event(event), f'accept {Event(event).value}')
