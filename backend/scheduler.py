"""Choose hosts for new instances: filter, then rank, in one pass over the hosts.

Every host that is not chosen gets a reason (disabled, unreachable, memory, cpu, zone, requirement,
placement group), so a refusal can say why instead of "cannot dispatch".
"""
import collections
import dataclasses
import heapq
import logging

from .errors import CapacityError

log = logging.getLogger(__name__)

POLICIES = ('packing', 'striping', 'load-aware')


@dataclasses.dataclass
class HostView:
    """What the scheduler needs to know about a host."""
    host_id: int
    name: str
    zone: str
    cpus: int
    memory_mib: int
    used_cpus: int = 0
    used_memory_mib: int = 0
    enabled: bool = True
    reachable: bool = True
    load: float = 0.0   # 0..1 CPU load reported by the monitor
    peer: bool = False  # another cloud: used once the local hosts are full (cloud bursting)
    zone_only: bool = False  # a peer used only by launches that ask for its zone
    domain_type: str = ''    # 'kvm', 'qemu', 'xen', 'test' (simulated) or 'ec2' (peer): moves stay within a kind

    def fits(self, vcpus, memory_mib):
        return (self.used_cpus + vcpus <= self.cpus
                and self.used_memory_mib + memory_mib <= self.memory_mib)

    def free_fraction(self):
        return min((self.cpus - self.used_cpus) / max(self.cpus, 1),
                   (self.memory_mib - self.used_memory_mib) / max(self.memory_mib, 1))


@dataclasses.dataclass(frozen=True)
class Request:
    min_count: int
    max_count: int
    vcpus: int
    memory_mib: int
    zone: str | None = None
    host_id: int | None = None          # Placement.HostId: pin to one host
    group_strategy: str | None = None   # 'cluster' or 'spread'
    group_hosts: frozenset = frozenset()  # hosts already holding members of the group
    # Hosts that cannot run this launch whatever their capacity: {host id: why} (a peer cloud that
    # has no copy of the image, or cannot give what the launch asks of the local network).
    refused: dict = dataclasses.field(default_factory=dict)


class Refusal(CapacityError):
    """InsufficientInstanceCapacity: the tenant's message, and each host's reason for administrators."""

    def __init__(self, message, rejections, zone=None):
        super().__init__('InsufficientInstanceCapacity', message)
        self.rejections = dict(rejections)
        self.zone = zone


@dataclasses.dataclass
class Placement:
    host_ids: list                       # one entry per placed instance
    rejections: dict                     # host name -> reason


def place(hosts, request, policy='striping'):
    """Place between min_count and max_count instances; CapacityError with reasons if < min_count."""
    candidates, rejections = _filter(hosts, request)
    if request.group_strategy == 'cluster':
        chosen = _place_cluster(candidates, request, policy, rejections)
    elif request.group_strategy == 'spread':
        chosen = _place_spread(candidates, request, policy, rejections)
    else:
        chosen = _place_ranked(candidates, request, policy)
    if len(chosen) < request.min_count:
        raise Refusal(_refusal(request, len(chosen), rejections, candidates),
                      _host_reasons(rejections, candidates, chosen), request.zone)
    return Placement(chosen, rejections)


def _filter(hosts, request):
    candidates, rejections = [], {}
    for host in hosts:
        reason = _rejection(host, request)
        if reason:
            rejections[host.name] = reason
        else:
            candidates.append(host)
    return candidates, rejections


def _rejection(host, request):
    if request.host_id is not None and host.host_id != request.host_id:
        return 'requirement: not the requested host'
    if host.host_id in request.refused:
        return request.refused[host.host_id]
    if not host.enabled:
        return 'disabled'
    if not host.reachable:
        return 'unreachable'
    if request.zone and host.zone != request.zone:
        return f'zone {host.zone} is not {request.zone}'
    if host.zone_only and request.zone != host.zone:
        return f'peer cloud cannot run it: it takes only launches into its zone {host.zone}'
    if request.memory_mib > host.memory_mib - host.used_memory_mib:
        return _capacity_reason(host, f'memory: {host.memory_mib - host.used_memory_mib} MiB free, '
                                      f'{request.memory_mib} MiB needed')
    if request.vcpus > host.cpus - host.used_cpus:
        return _capacity_reason(host, f'cpu: {host.cpus - host.used_cpus} vCPU free, {request.vcpus} needed')
    return None


def _capacity_reason(host, reason):
    # A full peer cloud is its own kind in the tenant's summary: the site burst and it was not enough.
    return f'peer cloud full: {reason}' if host.peer else reason


def _rank_key(host, policy):
    """Smaller is better; every local host before any peer cloud."""
    if policy == 'packing':
        return (host.peer, host.free_fraction(), host.host_id)
    if policy == 'load-aware':
        return (host.peer, host.load, -host.free_fraction(), host.host_id)
    return (host.peer, -host.free_fraction(), host.host_id)


def _place_ranked(candidates, request, policy):
    heap = [(_rank_key(host, policy), index) for index, host in enumerate(candidates)]
    heapq.heapify(heap)
    chosen = []
    while heap and len(chosen) < request.max_count:
        _, index = heapq.heappop(heap)
        host = candidates[index]
        if not host.fits(request.vcpus, request.memory_mib):
            continue
        _reserve(host, request)
        chosen.append(host.host_id)
        if host.fits(request.vcpus, request.memory_mib):
            heapq.heappush(heap, (_rank_key(host, policy), index))
    return chosen


def _place_cluster(candidates, request, policy, rejections):
    # All members of a cluster group share one host: the group's host if it has one.
    if request.group_hosts:
        for host in candidates:
            if host.host_id not in request.group_hosts:
                rejections[host.name] = 'placement group: cluster members are on another host'
        candidates = [host for host in candidates if host.host_id in request.group_hosts]
    best = []
    for host in sorted(candidates, key=lambda h: _rank_key(h, policy)):
        fits = _how_many_fit(host, request)
        if fits > len(best):
            best = [host.host_id] * min(fits, request.max_count)
            chosen_host = host
        if len(best) >= request.max_count:
            break
    if best:
        for _ in best:
            _reserve(chosen_host, request)
    return best


def _place_spread(candidates, request, policy, rejections):
    # Spread members each get a host of their own, none shared with an earlier member.
    free = []
    for host in candidates:
        if host.host_id in request.group_hosts:
            rejections[host.name] = 'placement group: spread member already on this host'
        else:
            free.append(host)
    free.sort(key=lambda h: _rank_key(h, policy))
    chosen = [host.host_id for host in free[:request.max_count]]
    for host in free[:request.max_count]:
        _reserve(host, request)
    return chosen


def _how_many_fit(host, request):
    by_cpu = (host.cpus - host.used_cpus) // max(request.vcpus, 1)
    by_memory = (host.memory_mib - host.used_memory_mib) // max(request.memory_mib, 1)
    return min(by_cpu, by_memory)


def _reserve(host, request):
    host.used_cpus += request.vcpus
    host.used_memory_mib += request.memory_mib


def _refusal(request, placed, rejections, candidates):
    """The tenant's message: why, counted by kind of reason, never naming a host (host names are
    for administrators, who find each host's reason in the log)."""
    if rejections:
        log.info('refused %d instance(s): %s', request.min_count,
                 '; '.join(f'{name}: {reason}' for name, reason in rejections.items()))
    kinds = collections.Counter(_reason_kind(reason) for reason in rejections.values())
    summary = 'Hosts that cannot take it: ' + ', '.join(f'{kind} ({count})' for kind, count in kinds.most_common())
    if not rejections:
        summary = 'no hosts are registered' if not candidates else ''
    return (f'Insufficient capacity: {request.min_count} instance(s) of {request.vcpus} vCPU / '
            f'{request.memory_mib} MiB requested, only {placed} could be placed. {summary}').strip()


def _host_reasons(rejections, candidates, chosen):
    """Every host's reason for administrators: those filtered out, and those that took part of the
    launch (or none of it) before they were full."""
    reasons = dict(rejections)
    for host in candidates:
        reasons.setdefault(host.name, f'full: {chosen.count(host.host_id)} of the instances counted here, then '
                                      f'{host.cpus - host.used_cpus} vCPU / '
                                      f'{host.memory_mib - host.used_memory_mib} MiB free')
    return reasons


def _reason_kind(reason):
    if reason.startswith('peer cloud'):
        return reason.split(':', 1)[0]
    if reason.startswith(('memory:', 'cpu:')):
        return 'not enough free ' + reason.split(':', 1)[0]
    if reason.startswith('zone '):
        return 'another availability zone'
    if reason.startswith('requirement:'):
        return 'not the requested host'
    return reason
