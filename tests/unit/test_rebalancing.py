"""The rebalance planner: packing empties hosts without overfilling any, striping narrows the spread,
and both keep moves inside a zone and a kind of host."""
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.compute.rebalancing import plan
from backend.scheduler import HostView


def cloud(loads, cpus=8, memory=8192, zone='z1', kind='test', first_id=0):
    """Hosts with the given numbers of 1-vCPU/512-MiB instances each."""
    hosts, instances = [], []
    for offset, count in enumerate(loads):
        host_id = first_id + offset
        hosts.append(HostView(host_id, f'h{host_id}', zone, cpus, memory, count, count * 512, domain_type=kind))
        instances += [(f'i-{host_id}-{n}', host_id, 1, 512) for n in range(count)]
    return hosts, instances


def apply(hosts, instances, moves):
    """Hosts' used vCPUs after the moves, checking each move's source and room on the way."""
    names = {host.name: host for host in hosts}
    where = {instance_id: host_id for instance_id, host_id, _, _ in instances}
    used = {host.host_id: host.used_cpus for host in hosts}
    for move in moves:
        source, target = names[move.source], names[move.target]
        assert where[move.instance_id] == source.host_id, 'an instance moved from where it is not'
        used[source.host_id] -= move.vcpus
        used[target.host_id] += move.vcpus
        assert used[target.host_id] <= target.cpus, 'a host would be overfilled'
        where[move.instance_id] = target.host_id
    return used


def test_packing_empties_the_least_used_hosts_onto_the_fullest():
    hosts, instances = cloud([6, 1, 2, 5])
    moves = plan(hosts, instances, 'packing')
    used = apply(hosts, instances, moves)
    assert sorted(used.values()) == [0, 0, 6, 8]
    assert len(moves) == 3


def test_packing_leaves_a_host_whose_instances_do_not_all_fit():
    hosts, instances = cloud([7, 7, 3])
    used = apply(hosts, instances, plan(hosts, instances, 'packing'))
    assert sorted(used.values()) == [1, 8, 8] or sorted(used.values()) == [3, 7, 7]
    assert sum(used.values()) == 17


def test_striping_narrows_the_spread_and_respects_zones_and_kinds():
    hosts, instances = cloud([8, 0, 0, 0])
    other_zone, more = cloud([0], zone='z2', first_id=10)
    other_kind, extra = cloud([0], kind='kvm', first_id=20)
    moves = plan(hosts + other_zone + other_kind, instances + more + extra, 'striping')
    used = apply(hosts + other_zone + other_kind, instances, moves)
    assert [used[i] for i in range(4)] == [2, 2, 2, 2]
    assert used[10] == 0 and used[20] == 0


def test_max_moves_bounds_the_plan():
    hosts, instances = cloud([8, 0, 0, 0])
    assert len(plan(hosts, instances, 'striping', max_moves=3)) == 3


@settings(max_examples=200, deadline=None)
@given(loads=st.lists(st.integers(0, 8), min_size=1, max_size=12), policy=st.sampled_from(['packing', 'striping']))
def test_no_plan_overfills_a_host_or_loses_an_instance(loads, policy):
    hosts, instances = cloud(loads)
    moves = plan(hosts, instances, policy)
    used = apply(hosts, instances, moves)
    assert sum(used.values()) == sum(loads)
    assert len({move.instance_id for move in moves}) == len(moves), 'an instance moves twice'
    if policy == 'packing':
        assert sum(1 for v in used.values() if v == 0) >= sum(1 for v in loads if v == 0)
