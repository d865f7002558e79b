"""Where an instance may move, running or stopped: a host of the same kind (a domain moves only
between hypervisors of one type, a simulated one between simulated hosts), in the instance's zone
(its subnet is there), enabled and reachable, never a peer cloud; the scheduler chooses among them,
with its reasons when none fits.
"""
import dataclasses

from .. import scheduler


def can_run(view):
    """Whether instances may start or move onto the host: enabled, and answering."""
    return view.enabled and view.reachable


def place(views, source, row, policy, host_id=None):
    """The host id the instance `row` on `source` (a HostView) moves to, with room for it;
    scheduler.Refusal when there is none. Takes its room in `views`, so that several instances
    placed in turn are spread as one launch would be."""
    request = scheduler.Request(1, 1, row.vcpus, row.memory_mib, zone=row.zone, host_id=host_id,
                                refused=unsuitable(views, source))
    return scheduler.place(views, request, policy).host_ids[0]


def place_stopped(views, source, row, policy, host_id=None):
    """The host a stopped instance moves to: one with room for it if any (it should start there
    later), else any host it may go to, since a stopped instance holds no capacity."""
    try:
        return place(views, source, row, policy, host_id)
    except scheduler.Refusal:
        return place(views, source, _Nothing(row.zone), policy, host_id)


@dataclasses.dataclass(frozen=True)
class _Nothing:
    """What a stopped instance asks of a host's room: nothing, in its zone."""
    zone: str
    vcpus: int = 0
    memory_mib: int = 0


def unsuitable(views, source):
    """{host id: why} of hosts an instance on `source` cannot move to, whatever their room."""
    # A source that cannot run it (the usual reason to move) is refused for that reason instead.
    refused = {source.host_id: 'requirement: the instance is there already'} if can_run(source) else {}
    for view in views:
        if view.peer:
            refused[view.host_id] = 'requirement: instances do not move to a peer cloud'
        elif view.domain_type != source.domain_type:
            refused.setdefault(view.host_id, f'requirement: a {view.domain_type} host cannot take '
                                              f'a {source.domain_type} domain')
    return refused
