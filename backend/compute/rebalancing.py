"""Rebalancing: a plan of moves toward a placement policy's target, then carried out a few at a time.

- packing empties as many hosts as it can (Green IT): the least-used hosts first, each only if every
  instance on it finds room on another host, best fit (the fullest host that still has room).
- striping spreads: an instance moves from the fullest host to the emptiest while that narrows the
  gap between them.
- load-aware spreads by the monitor's load reading instead, each host's load estimated to follow the
  share of its vCPUs that moves.

Moves stay among hosts of one zone and one kind (an instance's subnet is in its zone; a domain moves
only between hypervisors of one type), never to a peer cloud, disabled or unreachable host. Planning
costs a few logarithmic steps per instance: flat in the number of instances. Carrying out a plan never
overcommits a host, since every move holds capacity on both hosts until it ends (`migration`).
"""
import bisect
import collections
import dataclasses
import heapq
import time

from sqlalchemy import select

from ..errors import InvalidValue
from ..hosts import host_views
from ..lifecycle import State
from ..models import Host as HostRow, Instance as InstanceRow
from ..scheduler import POLICIES

WAVE_TIMEOUT_SECONDS = 600


@dataclasses.dataclass(frozen=True)
class PlannedMove:
    instance_id: str
    source: str
    target: str
    vcpus: int
    memory_mib: int


@dataclasses.dataclass
class _Host:
    host_id: int
    name: str
    cpus: int
    memory_mib: int
    used_cpus: int
    used_memory_mib: int
    load: float = 0.0

    @property
    def free(self):
        return (self.cpus - self.used_cpus, self.memory_mib - self.used_memory_mib)

    def fullness(self):
        return self.used_cpus / max(self.cpus, 1)

    def take(self, vcpus, memory_mib):
        self.used_cpus += vcpus
        self.used_memory_mib += memory_mib

    def give(self, vcpus, memory_mib):
        self.used_cpus -= vcpus
        self.used_memory_mib -= memory_mib


@dataclasses.dataclass(frozen=True)
class _Instance:
    instance_id: str
    host_id: int
    vcpus: int
    memory_mib: int


def plan(hosts, instances, policy, max_moves=None):
    """The moves toward `policy`'s target. `hosts`: scheduler HostViews; `instances`: (instance_id,
    host_id, vcpus, memory_mib) of running instances. Hosts are grouped by zone and kind first."""
    if policy not in POLICIES:
        raise InvalidValue(f"policy must be one of {', '.join(POLICIES)}")
    groups = collections.defaultdict(list)
    for view in hosts:
        if view.enabled and view.reachable and not view.peer:
            groups[(view.zone, view.domain_type)].append(_Host(view.host_id, view.name, view.cpus, view.memory_mib,
                                                               view.used_cpus, view.used_memory_mib, view.load))
    where = {host.host_id: key for key, members in groups.items() for host in members}
    by_group = collections.defaultdict(list)
    for instance_id, host_id, vcpus, memory_mib in instances:
        if host_id in where:
            by_group[where[host_id]].append(_Instance(instance_id, host_id, vcpus, memory_mib))
    moves = []
    for key in sorted(groups):
        budget = None if max_moves is None else max_moves - len(moves)
        if budget is not None and budget <= 0:
            break
        planner = _pack if policy == 'packing' else _spread
        moves += planner(groups[key], by_group[key], budget, by_load=policy == 'load-aware')
    return moves


# -- packing -----------------------------------------------------------------------------------------

def _pack(hosts, instances, budget, by_load=False):
    on_host = collections.defaultdict(list)
    for instance in instances:
        on_host[instance.host_id].append(instance)
    by_id = {host.host_id: host for host in hosts}
    # Empty hosts take nothing (filling one to empty another gains nothing), and a host that took
    # instances is not emptied in turn (no instance moves twice).
    targets = _BestFit([host for host in hosts if on_host[host.host_id]])
    receivers = set()
    moves = []
    for host in sorted((h for h in hosts if on_host[h.host_id]), key=lambda h: (h.used_cpus, h.used_memory_mib)):
        leaving = sorted(on_host[host.host_id], key=lambda i: (-i.vcpus, -i.memory_mib, i.instance_id))
        if host.host_id in receivers or (budget is not None and len(moves) + len(leaving) > budget):
            continue
        targets.remove(host)        # a host being emptied takes nothing
        chosen = []
        for instance in leaving:
            target = targets.best_fit(instance.vcpus, instance.memory_mib)
            if target is None:
                break
            targets.reserve(target, instance.vcpus, instance.memory_mib)
            chosen.append((instance, target))
        if len(chosen) < len(leaving):
            for instance, target in chosen:       # not all fit: this host stays as it is
                targets.release(target, instance.vcpus, instance.memory_mib)
            targets.add(host)
            continue
        for instance, target in chosen:
            host.give(instance.vcpus, instance.memory_mib)
            receivers.add(target.host_id)
            moves.append(PlannedMove(instance.instance_id, host.name, by_id[target.host_id].name,
                                     instance.vcpus, instance.memory_mib))
    return moves


class _BestFit:
    """Hosts ordered by free vCPUs then memory: the best fit is the first with room, found by
    bisection (a few steps per instance however many there are)."""

    def __init__(self, hosts):
        self.keys = []
        self.hosts = {}
        for host in hosts:
            self.add(host)

    def add(self, host):
        self.hosts[host.host_id] = host
        bisect.insort(self.keys, (*host.free, host.host_id))

    def remove(self, host):
        key = (*host.free, host.host_id)
        index = bisect.bisect_left(self.keys, key)
        if index < len(self.keys) and self.keys[index] == key:
            del self.keys[index]
        self.hosts.pop(host.host_id, None)

    def best_fit(self, vcpus, memory_mib):
        index = bisect.bisect_left(self.keys, (vcpus, memory_mib, -1))
        for free_cpus, free_memory, host_id in self.keys[index:index + 64]:
            if free_memory >= memory_mib:
                return self.hosts[host_id]
        for free_cpus, free_memory, host_id in self.keys[index + 64:]:   # rare: memory, not vCPUs, is short
            if free_memory >= memory_mib:
                return self.hosts[host_id]
        return None

    def reserve(self, host, vcpus, memory_mib):
        self.remove(host)
        host.take(vcpus, memory_mib)
        self.add(host)

    def release(self, host, vcpus, memory_mib):
        self.remove(host)
        host.give(vcpus, memory_mib)
        self.add(host)


# -- spreading ---------------------------------------------------------------------------------------

def _spread(hosts, instances, budget, by_load=False):
    """Move the smallest instance of the fullest host to the emptiest while the gap narrows."""
    on_host = collections.defaultdict(list)
    for instance in instances:
        on_host[instance.host_id].append(instance)
    for members in on_host.values():
        members.sort(key=lambda i: (-i.vcpus, -i.memory_mib, i.instance_id))     # smallest last: pop()

    def measure(host):
        return host.load if by_load else host.fullness()

    fullest = [(-measure(h), h.host_id) for h in hosts if on_host[h.host_id]]
    emptiest = [(measure(h), h.host_id) for h in hosts]
    heapq.heapify(fullest)
    heapq.heapify(emptiest)
    by_id = {host.host_id: host for host in hosts}
    moves = []
    while fullest and emptiest and (budget is None or len(moves) < budget):
        source, target = _top(fullest, by_id, measure, negative=True), _top(emptiest, by_id, measure)
        if source is None or target is None or source is target or not on_host[source.host_id]:
            break
        instance = on_host[source.host_id][-1]
        if not _narrows(source, target, instance, measure) or \
                target.free[0] < instance.vcpus or target.free[1] < instance.memory_mib:
            break
        on_host[source.host_id].pop()
        _shift(source, target, instance)
        moves.append(PlannedMove(instance.instance_id, source.name, target.name, instance.vcpus, instance.memory_mib))
        heapq.heappush(emptiest, (measure(target), target.host_id))
        heapq.heappush(emptiest, (measure(source), source.host_id))
        if on_host[source.host_id]:
            heapq.heappush(fullest, (-measure(source), source.host_id))
        heapq.heappush(fullest, (-measure(target), target.host_id))
        on_host[target.host_id].append(instance)
        on_host[target.host_id].sort(key=lambda i: (-i.vcpus, -i.memory_mib, i.instance_id))
    return moves


def _top(heap, by_id, measure, negative=False):
    """The heap's best host whose entry is current (entries go stale as hosts change: skip them)."""
    while heap:
        value, host_id = heap[0]
        host = by_id[host_id]
        if (-value if negative else value) == measure(host):
            return host
        heapq.heappop(heap)
    return None


def _shift(source, target, instance):
    share = instance.vcpus / max(source.used_cpus, 1)
    moved_load = source.load * share
    source.give(instance.vcpus, instance.memory_mib)
    target.take(instance.vcpus, instance.memory_mib)
    source.load -= moved_load
    target.load += moved_load


def _narrows(source, target, instance, measure):
    """Whether moving `instance` leaves the two hosts closer than they were."""
    before = measure(source) - measure(target)
    trial_source, trial_target = dataclasses.replace(source), dataclasses.replace(target)
    _shift(trial_source, trial_target, instance)
    return abs(measure(trial_source) - measure(trial_target)) < before


# -- the service -------------------------------------------------------------------------------------

class Rebalancer:
    def __init__(self, db, migrations):
        self.db = db
        self.migrations = migrations

    def plan(self, policy, max_moves=None):
        with self.db.read() as session:
            views = host_views(session)
            instances = session.execute(select(
                InstanceRow.instance_id, InstanceRow.host_id, InstanceRow.vcpus, InstanceRow.memory_mib)
                .where(InstanceRow.state == State.RUNNING.value)).all()
        return plan(views, instances, policy, max_moves)

    def carry_out(self, moves, parallel=4, live=True, report=lambda move: None, timeout=WAVE_TIMEOUT_SECONDS):
        """Moves in waves of `parallel`, each wave waited for; `report` hears each outcome (a Move)."""
        outcomes = []
        for start in range(0, len(moves), parallel):
            wave = moves[start:start + parallel]
            started = self.migrations.migrate([move.instance_id for move in wave], live=live,
                                              targets={move.instance_id: move.target for move in wave})
            moving = {move.instance_id: move for move in started if move.outcome == 'moving'}
            for move in started:
                if move.outcome != 'moving':
                    outcomes.append(move)
                    report(move)
            for move in self._wait(moving, timeout):
                outcomes.append(move)
                report(move)
        return outcomes

    def standby(self, host_names):
        """Put emptied hosts on standby: out of placement until enabled again."""
        with self.db.write() as session:
            for host in session.scalars(select(HostRow).where(HostRow.name.in_(list(host_names)))):
                if host.used_cpus == 0:
                    host.standby, host.enabled = True, False

    def _wait(self, moving, timeout):
        deadline = time.monotonic() + timeout
        while moving:
            for instance_id, (state, host_name, reason) in self.migrations.progress(list(moving)).items():
                if state == State.MIGRATING.value:
                    continue
                move = moving.pop(instance_id)
                outcome = 'moved' if host_name == move.target else (reason or f'ended {state} on {host_name}')
                yield dataclasses.replace(move, outcome=outcome, source=move.source)
            if moving:
                if time.monotonic() > deadline:
                    for move in moving.values():
                        yield dataclasses.replace(move, outcome='still moving when the wait ended')
                    return
                time.sleep(0.1)
