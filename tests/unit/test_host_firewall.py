"""Security groups in a real kernel: nftables tables applied to a machine of network namespaces.

The guests are namespaces whose host-side links carry the tap names of real instances' ports, on the
bridges and VPC router that `HostNetwork` makes. Policies are written by hand here; reading them from
the database is `security_policy`'s (tests/unit/test_security_policy.py).
"""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.host_names import HostNames
from backend.networking import nft_ruleset
from backend.networking.host_firewall import KernelTables, Target
from backend.networking.security_policy import GroupPolicy, Permission, Policy, Port, Segment
from tests.support.netns_lab import connects, needs_root, reaches, sh

pytestmark = needs_root

TAPS = 'rfff'           # the tap prefix of this "installation"
NAMES = HostNames('rsvt', '/lab/firewall')
BLUE = Segment(NAMES.bridge(1), NAMES.gateway_link(1), '10.0.0.0/20', '10.0.0.1', 1)
TEAL = Segment(NAMES.bridge(3), NAMES.gateway_link(3), '10.2.0.0/20', '10.2.0.1', 3)
ANYWHERE_OUT = Permission('-1', None, None, ('0.0.0.0/0',), ())
DEFAULT = GroupPolicy('sg-default', (Permission('-1', None, None, (), ('sg-default',)),), (ANYWHERE_OUT,))
# Guests: name -> (segment, address, MAC).
GUESTS = {'a': (BLUE, '10.0.0.5', '02:00:0a:00:00:05'), 'b': (BLUE, '10.0.0.6', '02:00:0a:00:00:06'),
          'c': (TEAL, '10.2.0.5', '02:00:0a:02:00:05'), 'd': (BLUE, '10.0.0.7', '02:00:0a:00:00:07')}


def port(name, *groups, source_dest_check=True):
    segment, address, mac = GUESTS[name]
    return Port(f'eni-{name}', f'{TAPS}{name}', segment.bridge, mac, (address,), source_dest_check,
                tuple(sorted(groups)))


def policy(ports, groups, members=None):
    """A Policy; the members of groups that rules name are worked out from `ports` unless given."""
    peers = sorted({peer for group in groups for p in group.ingress + group.egress for peer in p.peer_groups})
    if members is None:
        members = {peer: tuple(address for p in ports if peer in p.groups for address in p.addresses)
                   for peer in peers}
    return Policy((BLUE, TEAL), tuple(sorted(ports, key=lambda p: p.tap)), tuple(groups),
                  tuple(sorted(members.items())))


def tcp22(*cidrs, peers=()):
    return Permission('tcp', 22, 22, tuple(cidrs), tuple(peers))


@pytest.fixture(scope='module')
def machine():
    """Bridges blue and teal of one VPC, their router, and guests a, b, d (blue) and c (teal), each
    with a TCP server on port 22."""
    from backend.drivers.base import NicSpec
    from backend.networking.host_network import HostNetwork
    from tests.support.netns_lab import Lab
    lab = Lab()
    try:
        network = HostNetwork(prefix=lab.inside, names=NAMES)
        vpc_id = f'vpc-{lab.tag}'           # router namespaces are machine-wide: one of this lab's own
        lab.namespaces.append(network.router_namespace(vpc_id))
        for key, segment in ((1, BLUE), (3, TEAL)):
            network.ensure_segment(NicSpec(mac='02:00:00:00:00:01', ip='0.0.0.0', cidr=segment.cidr,
                                           gateway=segment.gateway, bridge=segment.bridge, network_key=key,
                                           vpc_id=vpc_id, vpc_key=1))
        guests = {}
        for name, (segment, address, mac) in GUESTS.items():
            guests[name] = lab.guest(name, segment.bridge, f'{address}/20', segment.gateway, port=f'{TAPS}{name}',
                                     mac=mac)
            lab.serve_tcp(guests[name], 22)
        lab.guests = guests
        yield lab
    finally:
        lab.close()


@pytest.fixture
def firewall(machine):
    """A fresh firewall target on the machine (its first apply replaces the tables whole)."""
    return Target(KernelTables(machine.inside), f'rsvtest_{machine.tag}', TAPS)


def pings(machine, source, target):
    return reaches(machine.guests[source], GUESTS[target][1])


def ssh_port_open(machine, source, target):
    return connects(machine.guests[source], GUESTS[target][1], 22)


def test_default_group_members_reach_each_other_and_a_new_group_lets_nothing_in(machine, firewall):
    web = GroupPolicy('sg-web', (), (ANYWHERE_OUT,))
    firewall.converge(policy([port('a', 'sg-default'), port('b', 'sg-default'), port('c', 'sg-web')],
                             [DEFAULT, web]), verify=False)
    assert pings(machine, 'a', 'b') and pings(machine, 'b', 'a')
    assert ssh_port_open(machine, 'a', 'b')
    assert not pings(machine, 'a', 'c'), 'a group with no ingress rule let a ping in'
    assert not ssh_port_open(machine, 'a', 'c')
    assert not pings(machine, 'c', 'a'), 'a non-member reached the default group'


def test_authorize_opens_and_revoke_closes_by_rewriting_one_chain(machine, firewall):
    ports = [port('a', 'sg-default'), port('c', 'sg-web')]
    closed = policy(ports, [DEFAULT, GroupPolicy('sg-web', (), (ANYWHERE_OUT,))])
    opened = policy(ports, [DEFAULT, GroupPolicy('sg-web', (tcp22('10.0.0.0/20'),), (ANYWHERE_OUT,))])
    firewall.converge(closed, verify=False)
    assert not ssh_port_open(machine, 'a', 'c')

    before = firewall.applied
    firewall.converge(opened, verify=False)
    script = ''.join(nft_ruleset.change_script(old, new) for old, new in zip(before, firewall.applied))
    assert 'delete table' not in script and 'flush chain inet' in script
    assert [line.split()[4] for line in script.splitlines() if line.startswith('flush')] == ['g-sg-web-in']
    assert ssh_port_open(machine, 'a', 'c'), 'the authorized port stays closed'
    assert not pings(machine, 'a', 'c'), 'a TCP rule let ICMP in'

    firewall.converge(closed, verify=False)
    assert not ssh_port_open(machine, 'a', 'c'), 'the revoked port stays open'


def test_a_rule_naming_a_group_admits_exactly_its_members(machine, firewall):
    admin = GroupPolicy('sg-admin', (), (ANYWHERE_OUT,))
    web = GroupPolicy('sg-web', (tcp22(peers=('sg-admin',)),), (ANYWHERE_OUT,))
    firewall.converge(policy([port('a', 'sg-admin'), port('b', 'sg-default'), port('c', 'sg-web')],
                             [DEFAULT, admin, web]), verify=False)
    assert ssh_port_open(machine, 'a', 'c')
    assert not ssh_port_open(machine, 'b', 'c')
    # b joins the admin group: one set element and one map entry change.
    before = firewall.applied
    firewall.converge(policy([port('a', 'sg-admin'), port('b', 'sg-admin'), port('c', 'sg-web')],
                             [admin, web]), verify=False)
    script = ''.join(nft_ruleset.change_script(old, new) for old, new in zip(before, firewall.applied))
    assert 'add element inet' in script and '10.0.0.6' in script and 'delete table' not in script
    assert ssh_port_open(machine, 'b', 'c')


def test_icmp_rules_admit_the_type_they_name(machine, firewall):
    echo = Permission('icmp', 8, -1, ('10.0.0.0/16',), ())
    web = GroupPolicy('sg-web', (echo,), (ANYWHERE_OUT,))
    firewall.converge(policy([port('a', 'sg-default'), port('c', 'sg-web')], [DEFAULT, web]), verify=False)
    assert pings(machine, 'a', 'c')
    assert not ssh_port_open(machine, 'a', 'c')


def test_egress_rules_hold_back_what_they_do_not_allow(machine, firewall):
    # d may only open TCP 22 connections; everything may come in to it.
    everything_in = Permission('-1', None, None, ('0.0.0.0/0',), ())
    locked = GroupPolicy('sg-locked', (everything_in,), (tcp22('10.0.0.0/8'),))
    open_group = GroupPolicy('sg-open', (everything_in,), (ANYWHERE_OUT,))
    firewall.converge(policy([port('d', 'sg-locked'), port('a', 'sg-open'), port('c', 'sg-open')],
                             [locked, open_group]), verify=False)
    assert ssh_port_open(machine, 'd', 'c')
    assert not pings(machine, 'd', 'a'), 'ICMP left a group that lets only TCP 22 out'
    assert pings(machine, 'a', 'd'), 'replies to allowed traffic in were held back'


def test_a_port_sends_only_from_its_own_addresses(machine, firewall):
    everything = Permission('-1', None, None, ('0.0.0.0/0',), ())
    open_group = GroupPolicy('sg-open', (everything,), (ANYWHERE_OUT,))
    firewall.converge(policy([port('a', 'sg-open'), port('b', 'sg-open')], [open_group]), verify=False)
    a = machine.guests['a']
    sh(*a, 'ip', 'addr', 'add', '10.0.0.99/20', 'dev', 'eth0')
    try:
        assert sh(*a, 'ping', '-c', '1', '-W', '1', '-I', '10.0.0.99', '10.0.0.6', check=False).returncode != 0, \
            'a spoofed source address got through'
        assert pings(machine, 'a', 'b')
        # With its source/destination check off, an interface may send for others (a NAT instance).
        firewall.converge(policy([port('a', 'sg-open', source_dest_check=False), port('b', 'sg-open')],
                                 [open_group]), verify=False)
        assert sh(*a, 'ping', '-c', '1', '-W', '2', '-I', '10.0.0.99', '10.0.0.6', check=False).returncode == 0
    finally:
        sh(*a, 'ip', 'addr', 'del', '10.0.0.99/20', 'dev', 'eth0')
    # A tap of ours that is no known port sends nothing; a foreign MAC is dropped.
    firewall.converge(policy([port('b', 'sg-open')], [open_group]), verify=False)
    assert not pings(machine, 'a', 'b'), 'an unknown tap of the installation got traffic through'
    firewall.converge(policy([port('a', 'sg-open'), port('b', 'sg-open')], [open_group]), verify=False)
    sh(*a, 'ip', 'link', 'set', 'eth0', 'address', '02:00:0a:00:00:63')
    try:
        sh(*a, 'ip', 'neigh', 'flush', 'all')
        assert not pings(machine, 'a', 'b'), 'a spoofed MAC address got through'
    finally:
        sh(*a, 'ip', 'link', 'set', 'eth0', 'address', GUESTS['a'][2])
    assert pings(machine, 'a', 'b')


def test_tables_flushed_behind_its_back_are_applied_again(machine, firewall):
    web = GroupPolicy('sg-web', (), (ANYWHERE_OUT,))
    wanted = policy([port('a', 'sg-default'), port('c', 'sg-web')], [DEFAULT, web])
    firewall.converge(wanted, verify=False)
    assert not pings(machine, 'a', 'c')
    sh(*machine.inside, 'nft', 'flush', 'table', 'inet', firewall.name)
    assert pings(machine, 'a', 'c'), 'the flush did not open the way (the test would prove nothing)'
    assert not firewall.converge(wanted, verify=False), 'a round without checking trusts what it applied'
    assert firewall.converge(wanted, verify=True)
    assert not pings(machine, 'a', 'c'), 'the checked round did not restore the rules'
    assert not firewall.converge(wanted, verify=True), 'intact tables were applied again'


# -- the difference between two tables, applied, is the second table ----------------------------------

GROUP_IDS = ('sg-1', 'sg-2', 'sg-3')


@st.composite
def policies(draw):
    """Small random policies over fixed guests and groups: the shapes the diff has to get right."""
    permission = st.builds(
        Permission, st.sampled_from(['tcp', 'udp', 'icmp', '-1', '47']),
        st.sampled_from([None, 22, 1000]), st.sampled_from([None, 22, 2000]),
        st.sampled_from([(), ('0.0.0.0/0',), ('10.0.0.0/8',), ('10.0.0.0/8', '192.168.1.0/24')]),
        st.lists(st.sampled_from(GROUP_IDS), max_size=2, unique=True).map(tuple))
    permission = permission.filter(lambda p: p.cidrs or p.peer_groups).map(_ordered_ports)
    ports = []
    for name in draw(st.lists(st.sampled_from(sorted(GUESTS)), unique=True)):
        groups = draw(st.lists(st.sampled_from(GROUP_IDS), min_size=1, max_size=3, unique=True))
        ports.append(port(name, *groups, source_dest_check=draw(st.booleans())))
    used = sorted({group for p in ports for group in p.groups})
    groups = [GroupPolicy(group, tuple(draw(st.lists(permission, max_size=3))), tuple(draw(st.lists(permission,
                                                                                                   max_size=2))))
              for group in used]
    return policy(ports, groups)


def _ordered_ports(permission):
    if permission.protocol not in ('tcp', 'udp') or permission.from_port is None or permission.to_port is None:
        return Permission(permission.protocol, None, None, permission.cidrs, permission.peer_groups)
    low, high = sorted((permission.from_port, permission.to_port))
    return Permission(permission.protocol, low, high, permission.cidrs, permission.peer_groups)


def kernel_view(inside, family, name):
    """A table as the kernel holds it: each chain's rules and each set's elements, handles left out."""
    import json
    listing = json.loads(sh(*inside, 'nft', '-j', 'list', 'table', family, name).stdout)['nftables']
    chains, sets = {}, {}
    for entry in listing:
        if 'chain' in entry:
            chains.setdefault(entry['chain']['name'], [])
        elif 'rule' in entry:
            chains[entry['rule']['chain']].append(json.dumps(entry['rule']['expr'], sort_keys=True))
        elif 'set' in entry or 'map' in entry:
            found = entry.get('set') or entry.get('map')
            sets[found['name']] = sorted(json.dumps(element, sort_keys=True) for element in found.get('elem', ()))
    return chains, sets


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=policies(), after=policies())
def test_a_change_script_turns_the_kernel_tables_into_the_wanted_ones(machine, before, after):
    incremental = Target(KernelTables(machine.inside), f'rsvdiff_{machine.tag}', TAPS)
    whole = Target(KernelTables(machine.inside), f'rsvwhole_{machine.tag}', TAPS)
    try:
        incremental.converge(before, verify=False)
        incremental.converge(after, verify=False)
        whole.converge(after, verify=False)
        for family in ('inet', 'bridge'):
            assert kernel_view(machine.inside, family, incremental.name) == \
                kernel_view(machine.inside, family, whole.name)
    finally:   # their drop rules would hold up the other tests' guests
        for family in ('inet', 'bridge'):
            for name in (incremental.name, whole.name):
                sh(*machine.inside, 'nft', 'delete', 'table', family, name, check=False)


def test_a_kernel_that_refuses_the_tables_is_reported_until_it_takes_them(cloud, tmp_path):
    from backend.networking.host_firewall import HostFirewall
    firewall = HostFirewall('rsvtest', tmp_path, tmp_path / 'firewall', command_prefix=('false',))
    hosts = {1: 'qemu:///embed?root=/nowhere'}
    assert not firewall.reconcile(cloud.db, hosts, generation=1)
    assert firewall.kernel_error and 'failed' in firewall.kernel_error
    firewall.kernel.sink = KernelTables(('true',))       # a kernel that takes anything
    assert firewall.reconcile(cloud.db, hosts, generation=2)
    assert firewall.kernel_error is None
