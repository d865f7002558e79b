"""Bridges, VPC routers and elastic IP NAT on a host, checked in network namespaces this test makes.

The "host" is a namespace; each "guest" is a namespace with a veth into one of the host's bridges
and its subnet's gateway as its default route. Forwarding is on in the host namespace, so what keeps
VPCs apart is that nothing joins their routers, not a missing sysctl. Nothing leaves the namespaces.
"""
import pytest

from backend.drivers import open_driver
from backend.drivers.base import LaunchSpec, NicSpec
from backend.drivers.instance_files import InstanceFiles
from backend.host_names import HostNames
from backend.networking.host_network import (Desired, HostNetwork, Router, Segment, bridge_name, filter_rules,
                                             namespace_prefix, router_rules)
from backend.models import Network as NetworkRow
from tests.support.netns_lab import needs_root, reaches, sh

# VPC 1 has two subnets, blue and teal; VPC 2's green subnet uses the very addresses of blue.
BLUE = NetworkRow(id=1, name='blue', cidr='10.0.0.0/20', gateway='10.0.0.1', bridge=None, vlan=None, vpc_pk=1)
TEAL = NetworkRow(id=3, name='teal', cidr='10.2.0.0/20', gateway='10.2.0.1', bridge=None, vlan=None, vpc_pk=1)
GREEN = NetworkRow(id=2, name='green', cidr='10.0.0.0/20', gateway='10.0.0.1', bridge='br-green', vlan=None,
                   vpc_pk=2)
VPC_IDS = {1: 'vpc-00000000000000001', 2: 'vpc-00000000000000002'}
ELASTIC_IP, OTHER_ELASTIC_IP = '192.0.2.10', '192.0.2.11'
NAMES = HostNames('rsv', '/var/lib/reservoir')


def router(vpc_key, rows, associations=(), names=NAMES):
    return Router(vpc_key, VPC_IDS[vpc_key], tuple(Segment.of(row, names) for row in rows), tuple(associations))


# -- the rules, as text ------------------------------------------------------------------------------

def test_bridge_and_namespace_names():
    blue = bridge_name(BLUE, NAMES)
    assert blue == NAMES.bridge(1) and blue.startswith('rsv') and blue.endswith('-1')
    assert bridge_name(BLUE) is None, 'without names the driver names it'
    assert bridge_name(GREEN, NAMES) == 'br-green'
    assert Segment.of(BLUE, NAMES).host_link == NAMES.gateway_link(1) and Segment.of(BLUE, NAMES).router_link == 'g1'
    assert namespace_prefix('/a') != namespace_prefix('/b') and namespace_prefix('/a') == namespace_prefix('/a')
    assert namespace_prefix('/a') == HostNames('rsv', '/a').namespaces


def test_every_installation_names_its_links_and_chain_apart_within_the_kernel_limit():
    other_home, other_prefix = HostNames('rsv', '/srv/other'), HostNames('ab12', '/var/lib/reservoir')
    for names in (NAMES, other_home, other_prefix):
        links = (names.bridge(999999), names.gateway_link(999999), names.uplink(999999))
        assert all(len(link) <= 15 for link in links), links
        assert names.is_uplink(names.uplink(7)) and not names.is_uplink(names.gateway_link(7))
    assert len({names.bridge(1) for names in (NAMES, other_home, other_prefix)}) == 3
    assert len({names.forward_chain for names in (NAMES, other_home, other_prefix)}) == 3
    assert not other_home.is_uplink(NAMES.uplink(7))
    assert NAMES.domain('i-0123456789abcdef0') == 'rsv-i-0123456789abcdef0'
    assert NAMES.instance_of('rsv-i-0123456789abcdef0') == 'i-0123456789abcdef0'
    assert other_prefix.instance_of('rsv-i-0123456789abcdef0') is None


def test_the_host_bridges_within_a_subnet_and_routes_nothing_from_one():
    chain, blue = NAMES.forward_chain, NAMES.bridge(1)
    rules = filter_rules((Segment.of(BLUE, NAMES), Segment.of(GREEN, NAMES)), chain)
    assert f'-A {chain} -i {blue} -o {blue} -j RETURN' in rules
    assert f'-A {chain} -i br-green -j DROP' in rules
    assert rules.index(f'-A {chain} -i {blue} -o {blue} -j RETURN') < rules.index(f'-A {chain} -i {blue} -j DROP')


def test_router_rules_one_nat_pair_per_association_and_nothing_else_leaves():
    rules = router_rules(router(1, (BLUE,), ((ELASTIC_IP, '10.0.0.5'),)))
    assert f'-A PREROUTING -d {ELASTIC_IP}/32 -j DNAT --to-destination 10.0.0.5' in rules
    assert f'-A POSTROUTING -o up0 -s 10.0.0.5/32 -j SNAT --to-source {ELASTIC_IP}' in rules
    assert rules.index('-A FORWARD -o up0 -s 10.0.0.5/32 -j ACCEPT') < rules.index('-A FORWARD -o up0 -j DROP')
    assert not [rule for rule in router_rules(router(1, (BLUE,))) if 'NAT --to' in rule]


# -- applied in namespaces ---------------------------------------------------------------------------

def nic_of(network, ip='10.0.0.5', names=None):
    """An instance's NIC on `network`, as the worker hands it to a host driver."""
    return NicSpec(mac='02:00:0a:00:00:05', ip=ip, cidr=network.cidr, gateway=network.gateway,
                   bridge=bridge_name(network, names), vlan=network.vlan, network_key=network.id,
                   vpc_id=VPC_IDS[network.vpc_pk], vpc_key=network.vpc_pk)


def lab_names(lab, prefix='rsv', home='a'):
    """An installation of the lab: its own state directory, so its router namespaces are its own."""
    return HostNames(prefix, f'/lab/{lab.tag}/{home}')


def host_network(lab, names=None, uplink=None):
    return HostNetwork(uplink=uplink, prefix=lab.inside, names=names or lab_names(lab))


@needs_root
def test_a_segment_is_made_once_with_its_gateway_in_the_vpc_router(lab):
    network = host_network(lab)
    lab.namespaces.append(network.router_namespace(VPC_IDS[1]))
    nic = nic_of(BLUE, names=network.names)
    network.ensure_segment(nic)
    network.ensure_segment(nic)
    network._ready.clear()                    # as a new worker process would: set up again, no error
    network.ensure_segment(nic)
    bridge = network.names.bridge(1)
    assert 'inet ' not in sh(*lab.inside, 'ip', '-o', 'addr', 'show', 'dev', bridge).stdout
    assert f'master {bridge}' in sh(*lab.inside, 'ip', 'link', 'show', 'dev', network.names.gateway_link(1)).stdout
    router_side = sh('ip', 'netns', 'exec', network.router_namespace(VPC_IDS[1]), 'ip', '-o', 'addr', 'show').stdout
    assert '10.0.0.1/20' in router_side
    assert sh(*lab.inside, 'ip', '-o', 'link', 'show', 'type', 'bridge').stdout.count(f'{bridge}:') == 1


@needs_root
def test_a_router_name_left_without_its_namespace_is_made_again(lab):
    # What a server killed inside a mount namespace of its own leaves: the name, and no namespace behind it.
    network = host_network(lab)
    name = network.router_namespace(VPC_IDS[1])
    lab.namespaces.append(name)
    with open(f'/run/netns/{name}', 'w'):
        pass
    network.ensure_segment(nic_of(BLUE, names=network.names))
    router_side = sh('ip', 'netns', 'exec', name, 'ip', '-o', 'addr', 'show').stdout
    assert '10.0.0.1/20' in router_side


@needs_root
def test_a_router_made_again_at_once_replaces_links_its_removed_namespace_left(lab):
    # The kernel destroys a deleted namespace's interfaces in the background: right after a router is
    # removed, the host ends of its links may still be there, with nothing at the other end.
    network = host_network(lab)
    name = network.router_namespace(VPC_IDS[1])
    lab.namespaces.append(name)
    sh(*lab.inside, 'ip', 'link', 'add', network.names.uplink(1), 'type', 'veth', 'peer', 'name', 'leftover-u')
    sh(*lab.inside, 'ip', 'link', 'add', network.names.gateway_link(1), 'type', 'veth', 'peer', 'name', 'leftover-g')
    network.ensure_segment(nic_of(BLUE, names=network.names))
    router_side = sh('ip', 'netns', 'exec', name, 'ip', '-o', 'link', 'show').stdout
    assert 'up0@' in router_side and 'g1@' in router_side
    assert 'leftover' not in sh(*lab.inside, 'ip', '-o', 'link', 'show').stdout


@needs_root
def test_simulated_hosts_get_no_bridge(lab, tmp_path):
    node = tmp_path / 'node.xml'
    node.write_text('<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>'
                    '<mhz>2000</mhz><model>x86_64</model></cpu><memory>2097152</memory></node>\n')
    network = host_network(lab)
    driver = open_driver(f'test://{node}', InstanceFiles(tmp_path / 'instances'), network)
    driver.deploy(LaunchSpec(instance_id='i-0123456789abcdef0', image_id='ami-0123456789abcdef0',
                             instance_type='t1.micro', vcpus=1, memory_mib=128, zone='z', root=None,
                             nics=(nic_of(BLUE),)))
    driver.close()
    assert sh(*lab.inside, 'ip', 'link', 'show', 'dev', network.names.bridge(1), check=False).returncode != 0


@needs_root
def test_vlan_subinterface_joins_the_bridge(lab):
    sh(*lab.inside, 'ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0-peer')
    if sh(*lab.inside, 'ip', 'link', 'add', 'link', 'up0', 'name', 'probe', 'type', 'vlan', 'id', '1',
          check=False).returncode != 0:
        pytest.skip('this kernel has no 802.1Q VLAN support')
    tagged = NetworkRow(id=4, name='tagged', cidr='10.2.0.0/20', gateway='10.2.0.1', bridge=None, vlan=42, vpc_pk=1)
    network = host_network(lab, uplink='up0')
    lab.namespaces.append(network.router_namespace(VPC_IDS[1]))
    network.ensure_segment(nic_of(tagged, names=network.names))
    shown = sh(*lab.inside, 'ip', '-d', 'link', 'show', 'dev', 'up0.42').stdout
    assert f'master {network.names.bridge(4)}' in shown and 'vlan protocol 802.1Q id 42' in shown


@needs_root
def test_vpcs_with_the_same_addresses_stay_apart_and_elastic_ips_cross(lab):
    network = host_network(lab)
    lab.namespaces += [network.router_namespace(vpc_id) for vpc_id in VPC_IDS.values()]
    # The host's own address, the source of its pings to elastic IPs.
    sh(*lab.inside, 'ip', 'link', 'add', 'outside', 'type', 'veth', 'peer', 'name', 'outside-p')
    sh(*lab.inside, 'ip', 'addr', 'add', '198.51.100.1/32', 'dev', 'outside')
    sh(*lab.inside, 'ip', 'link', 'set', 'outside', 'up')
    names = network.names
    blue, teal, green = router(1, (BLUE, TEAL), names=names), None, router(2, (GREEN,), names=names)
    network.apply(Desired((blue, green)))
    blue_a = lab.guest('a', names.bridge(1), '10.0.0.5/20', '10.0.0.1')
    lab.guest('b', names.bridge(1), '10.0.0.6/20', '10.0.0.1')
    teal = lab.guest('t', names.bridge(3), '10.2.0.5/20', '10.2.0.1')
    green_c = lab.guest('c', 'br-green', '10.0.0.7/20', '10.0.0.1')

    assert reaches(blue_a, '10.0.0.6'), 'same subnet'
    assert reaches(teal, '10.0.0.5'), 'two subnets of one VPC route to each other'
    assert reaches(green_c, '10.0.0.1'), 'the other VPC has a router of its own'
    assert not reaches(green_c, '10.0.0.5') and not reaches(green_c, '10.0.0.6'), 'crossed into another VPC'
    assert not reaches(green_c, '10.2.0.5')

    network.apply(Desired((router(1, (BLUE, TEAL), ((ELASTIC_IP, '10.0.0.5'),), names), green)))
    assert reaches(lab.inside, ELASTIC_IP), 'the host reaches the elastic IP'
    assert not reaches(green_c, ELASTIC_IP), 'without a public address of its own nothing leaves a VPC'
    network.apply(Desired((router(1, (BLUE, TEAL), ((ELASTIC_IP, '10.0.0.5'),), names),
                           router(2, (GREEN,), ((OTHER_ELASTIC_IP, '10.0.0.7'),), names))))
    assert reaches(green_c, ELASTIC_IP), 'public address to public address crosses VPCs'
    assert not reaches(green_c, '10.0.0.5')

    network.apply(Desired((blue, green)))      # disassociated: rules, addresses and routes are gone
    assert not reaches(lab.inside, ELASTIC_IP)
    assert ELASTIC_IP not in sh(*lab.inside, 'ip', 'route', 'show').stdout
    assert ELASTIC_IP not in sh('ip', 'netns', 'exec', network.router_namespace(VPC_IDS[1]), 'iptables-save').stdout
    assert sh(*lab.inside, 'iptables-save').stdout.count(f'-A FORWARD -j {names.forward_chain}') == 1

    network.apply(Desired((blue,)))            # a VPC without instances here loses its router
    assert network.router_namespace(VPC_IDS[2]) not in sh('ip', 'netns', 'list').stdout
    assert reaches(blue_a, '10.0.0.6')


# -- two installations on one machine ----------------------------------------------------------------

def give_the_host_an_address(lab):
    """The host's own address: the source of its pings to elastic IPs."""
    sh(*lab.inside, 'ip', 'link', 'add', 'outside', 'type', 'veth', 'peer', 'name', 'outside-p')
    sh(*lab.inside, 'ip', 'addr', 'add', '198.51.100.1/32', 'dev', 'outside')
    sh(*lab.inside, 'ip', 'link', 'set', 'outside', 'up')


def public_routes(lab):
    return sh(*lab.inside, 'ip', '-4', 'route', 'show', 'proto', '98').stdout


@needs_root
def test_two_installations_keep_their_bridges_chains_and_routes_apart(lab):
    # The same network and VPC keys and VPC ids in both databases: only the names keep them apart.
    first = host_network(lab, lab_names(lab, 'rsv', 'first'))
    second = host_network(lab, lab_names(lab, 'two', 'second'))
    lab.namespaces += [network.router_namespace(vpc_id) for network in (first, second) for vpc_id in VPC_IDS.values()]
    give_the_host_an_address(lab)
    second_blue = router(1, (BLUE,), ((OTHER_ELASTIC_IP, '10.0.0.5'),), second.names)
    second.apply(Desired((second_blue,)))
    guest = lab.guest('s', second.names.bridge(1), '10.0.0.5/20', '10.0.0.1')
    assert reaches(lab.inside, OTHER_ELASTIC_IP)

    first.apply(Desired((router(1, (BLUE, TEAL), ((ELASTIC_IP, '10.0.0.5'),), first.names),)))
    first.apply(Desired((router(1, (BLUE,), names=first.names),)))    # its elastic IP let go, TEAL gone
    assert OTHER_ELASTIC_IP in public_routes(lab) and ELASTIC_IP not in public_routes(lab)
    assert reaches(lab.inside, OTHER_ELASTIC_IP), "the first installation removed the second's route"
    rules = sh(*lab.inside, 'iptables-save', '-t', 'filter').stdout
    for network in (first, second):
        assert rules.count(f'-A FORWARD -j {network.names.forward_chain}') == 1
        assert f'-A {network.names.forward_chain} -i {network.names.bridge(1)} -j DROP' in rules
    assert first.names.bridge(1) != second.names.bridge(1)
    assert f'master {second.names.bridge(1)}' in sh(*lab.inside, 'ip', 'link', 'show', 'dev',
                                                     second.names.gateway_link(1)).stdout
    assert reaches(guest, '10.0.0.1')

    # An address both pools hold is left with the installation that routed it first.
    first.apply(Desired((router(1, (BLUE,), ((OTHER_ELASTIC_IP, '10.0.0.6'),), first.names),)))
    assert f'dev {second.names.uplink(1)}' in public_routes(lab)
    assert reaches(lab.inside, OTHER_ELASTIC_IP)

    first.apply(Desired(()))                   # the first installation's last router goes
    assert first.router_namespace(VPC_IDS[1]) not in sh('ip', 'netns', 'list').stdout
    assert second.router_namespace(VPC_IDS[1]) in sh('ip', 'netns', 'list').stdout
    assert reaches(lab.inside, OTHER_ELASTIC_IP) and reaches(guest, '10.0.0.1')


@needs_root
def test_names_of_an_earlier_version_are_removed_and_running_guests_move_to_the_new_bridge(lab):
    network = host_network(lab)
    names = network.names
    lab.namespaces += [network.router_namespace(VPC_IDS[1])]
    # What an earlier version left: a bridge with a guest on it, a gateway veth, an uplink routed to,
    # and its filter chain.
    sh(*lab.inside, 'ip', 'link', 'add', 'rsv-1', 'type', 'bridge')
    sh(*lab.inside, 'ip', 'link', 'set', 'rsv-1', 'up')
    sh(*lab.inside, 'ip', 'link', 'add', 'rsv-g1', 'type', 'veth', 'peer', 'name', 'old-g1')
    sh(*lab.inside, 'ip', 'link', 'add', 'rsv-u1', 'type', 'veth', 'peer', 'name', 'old-u1')
    sh(*lab.inside, 'ip', 'link', 'set', 'rsv-u1', 'up')
    sh(*lab.inside, 'ip', 'route', 'add', '192.0.2.99/32', 'dev', 'rsv-u1', 'proto', '98')
    sh(*lab.inside, 'iptables', '-N', 'RSV-FORWARD')
    sh(*lab.inside, 'iptables', '-I', 'FORWARD', '1', '-j', 'RSV-FORWARD')
    guest = lab.guest('o', 'rsv-1', '10.0.0.5/20', '10.0.0.1', port=f'ptap{lab.tag}')

    network.apply(Desired((router(1, (BLUE,), names=names),)))
    links = sh(*lab.inside, 'ip', '-o', 'link', 'show').stdout
    assert not any(f' {old}' in links for old in ('rsv-1:', 'rsv-g1', 'rsv-u1', 'old-g1', 'old-u1'))
    assert '192.0.2.99' not in public_routes(lab)
    assert 'RSV-FORWARD' not in sh(*lab.inside, 'iptables-save', '-t', 'filter').stdout
    assert f'master {names.bridge(1)}' in sh(*lab.inside, 'ip', 'link', 'show', 'dev', f'ptap{lab.tag}').stdout
    assert reaches(guest, '10.0.0.1'), 'the running guest lost its gateway'
