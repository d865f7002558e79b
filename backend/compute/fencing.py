"""Host failure beyond impaired: fencing, then recovery of what can safely start elsewhere.

A host that stops answering leaves its instances impaired (the monitor), because they may well still
run there: starting them again elsewhere could give two copies writing one disk. Only when the
host is known to be off is that safe, so:

1. A host unreachable for `fence_after_seconds` that has a fence command (`reservoir host set-fence`)
   is fenced: the command runs with the host's name and URI in its environment (RESERVOIR_HOST_NAME,
   RESERVOIR_HOST_URI), and success (exit status 0) means the host is off. The host is then
   `fenced` and disabled; a failed command is tried again the next round.
2. The fenced host's impaired instances whose disks are on shared storage (the host was registered
   with --shared-storage) are placed on another host of the same kind and zone by the scheduler and
   start there (state reason `Server.Recovered`). The others stay impaired, with the reason.
3. Should a fenced host answer again, domains of instances that now belong to another host are
   destroyed there before it is enabled by an administrator: never two copies.

Without a fence command nothing is started twice: the instances stay impaired until the host answers.
"""
import datetime
import logging
import os
import subprocess

from sqlalchemy import select

from . import move_targets
from ..errors import BackendError
from ..hosts import host_views
from ..instances import rehome, transition
from ..lifecycle import Event, State
from ..models import Host as HostRow, Instance as InstanceRow, utcnow

log = logging.getLogger(__name__)

FENCE_TIMEOUT_SECONDS = 120
FENCED = 'fenced'


class Fencing:
    def __init__(self, db, after_seconds, policy='striping', wake_workers=None):
        self.db = db
        self.after = datetime.timedelta(seconds=after_seconds)
        self.policy = policy
        self.wake_workers = wake_workers or (lambda: None)

    def set_command(self, host_name, command):
        """`reservoir host set-fence NAME COMMAND` ('' removes it)."""
        with self.db.write() as session:
            host = session.scalar(select(HostRow).where(HostRow.name == host_name))
            if host is None:
                raise BackendError('InvalidHost.NotFound', f"no host is named '{host_name}'")
            host.fence_command = command or None

    def run_round(self, host_ids):
        """Fence the hosts among `host_ids` that are due, then recover what they held."""
        for host_id, name, uri, command in self._due(host_ids):
            if self._fence(name, uri, command):
                self._recover(host_id, name)

    def _due(self, host_ids):
        deadline = utcnow() - self.after
        with self.db.read() as session:
            return session.execute(select(HostRow.id, HostRow.name, HostRow.uri, HostRow.fence_command).where(
                HostRow.id.in_(list(host_ids)), HostRow.state == 'unreachable',
                HostRow.fence_command.is_not(None), HostRow.unreachable_since <= deadline)).all()

    def _fence(self, name, uri, command):
        environment = dict(os.environ, RESERVOIR_HOST_NAME=name, RESERVOIR_HOST_URI=uri)
        try:
            result = subprocess.run(['sh', '-c', command], env=environment, capture_output=True, text=True,
                                    timeout=FENCE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning('fencing %s timed out after %d s; trying again next round', name, FENCE_TIMEOUT_SECONDS)
            return False
        if result.returncode != 0:
            log.warning('fencing %s failed (exit status %d): %s', name, result.returncode, result.stderr.strip()[-500:])
            return False
        with self.db.write() as session:
            host = session.get(HostRow, self._id_of(session, name))
            host.state, host.enabled = FENCED, False
            host.state_reason = f'fenced after being unreachable since {host.unreachable_since:%Y-%m-%d %H:%M:%SZ}'
        log.warning('host %s was fenced', name)
        return True

    @staticmethod
    def _id_of(session, name):
        return session.scalar(select(HostRow.id).where(HostRow.name == name))

    def _recover(self, host_id, name):
        """Start elsewhere what the fenced host held on shared storage; say why the rest stays."""
        recovered = 0
        with self.db.write() as session:
            host = session.get(HostRow, host_id)
            views = host_views(session)
            source = next(view for view in views if view.host_id == host_id)
            for row in session.scalars(select(InstanceRow).where(
                    InstanceRow.host_id == host_id, InstanceRow.state == State.IMPAIRED.value).with_for_update()):
                if not host.shared_storage:
                    row.state_reason_code = 'Server.HostFenced'
                    row.state_reason_message = (f'Server.HostFenced: its host {name} was fenced; its disk is not '
                                                'on shared storage, so it cannot start elsewhere')
                    continue
                target = self._place(views, source, row)
                if target is None:
                    row.state_reason_message = f'Server.HostFenced: its host {name} was fenced; no other host has room'
                    continue
                rehome(session, row, target)
                transition(session, row, Event.RECOVER, reason_code='Server.Recovered',
                           reason=f'Server.Recovered: started again after its host {name} was fenced',
                           transition_reason=f'recovered from the fenced host {name}')
                recovered += 1
        if recovered:
            log.warning('%d instance(s) of the fenced host %s start again elsewhere', recovered, name)
            self.wake_workers()

    def _place(self, views, source, row):
        try:
            return move_targets.place(views, source, row, self.policy)
        except BackendError:
            return None
