"""Bridges, VPC routers and elastic IP NAT on a host, checked in network namespaces this test makes.

The "host" is a namespace; each "guest" is a namespace with a veth into one of the host's bridges
and its subnet's gateway as its default route. Forwarding is on in the host namespace, so what keeps
VPCs apart is that nothing joins their routers, not a missing sysctl. Nothing leaves the namespaces.
"""
import pytest

from backend.drivers import open_driver
from backend.drivers.base import LaunchSpec, NicSpec
from backend.drivers.instance_files import InstanceFiles
from backend.networking.host_network import (FORWARD_CHAIN, Desired, HostNetwork, Router, Segment, bridge_name,
                                             filter_rules, namespace_prefix, router_rules)
from backend.models import Network as NetworkRow
from tests.support.netns_lab import needs_root, reaches, sh

# VPC 1 has two subnets, blue and teal; VPC 2's green subnet uses the very addresses of blue.
BLUE = NetworkRow(id=1, name='blue', cidr='10.0.0.0/20', gateway='10.0.0.1', bridge=None, vlan=None, vpc_pk=1)
TEAL = NetworkRow(id=3, name='teal', cidr='10.2.0.0/20', gateway='10.2.0.1', bridge=None, vlan=None, vpc_pk=1)
GREEN = NetworkRow(id=2, name='green', cidr='10.0.0.0/20', gateway='10.0.0.1', bridge='br-green', vlan=None,
                   vpc_pk=2)
VPC_IDS = {1: 'vpc-00000000000000001', 2: 'vpc-00000000000000002'}
ELASTIC_IP, OTHER_ELASTIC_IP = '192.0.2.10', '192.0.2.11'


def router(vpc_key, rows, associations=()):
    return Router(vpc_key, VPC_IDS[vpc_key], tuple(Segment.of(row) for row in rows), tuple(associations))


# -- the rules, as text ------------------------------------------------------------------------------

def test_bridge_and_namespace_names():
    assert bridge_name(BLUE) == 'rsv-1'
    assert bridge_name(GREEN) == 'br-green'
    assert Segment.of(BLUE).host_link == 'rsv-g1' and Segment.of(BLUE).router_link == 'g1'
    assert namespace_prefix('/a') != namespace_prefix('/b') and namespace_prefix('/a') == namespace_prefix('/a')


def test_the_host_bridges_within_a_subnet_and_routes_nothing_from_one():
    rules = filter_rules((Segment.of(BLUE), Segment.of(GREEN)))
    assert f'-A {FORWARD_CHAIN} -i rsv-1 -o rsv-1 -j RETURN' in rules
    assert f'-A {FORWARD_CHAIN} -i br-green -j DROP' in rules
    assert rules.index(f'-A {FORWARD_CHAIN} -i rsv-1 -o rsv-1 -j RETURN') < \
        rules.index(f'-A {FORWARD_CHAIN} -i rsv-1 -j DROP')


def test_router_rules_one_nat_pair_per_association_and_nothing_else_leaves():
    rules = router_rules(router(1, (BLUE,), ((ELASTIC_IP, '10.0.0.5'),)))
    assert f'-A PREROUTING -d {ELASTIC_IP}/32 -j DNAT --to-destination 10.0.0.5' in rules
    assert f'-A POSTROUTING -o up0 -s 10.0.0.5/32 -j SNAT --to-source {ELASTIC_IP}' in rules
    assert rules.index('-A FORWARD -o up0 -s 10.0.0.5/32 -j ACCEPT') < rules.index('-A FORWARD -o up0 -j DROP')
    assert not [rule for rule in router_rules(router(1, (BLUE,))) if 'NAT --to' in rule]


# -- applied in namespaces ---------------------------------------------------------------------------

def nic_of(network, ip='10.0.0.5'):
    """An instance's NIC on `network`, as the worker hands it to a host driver."""
    return NicSpec(mac='02:00:0a:00:00:05', ip=ip, cidr=network.cidr, gateway=network.gateway,
                   bridge=bridge_name(network), vlan=network.vlan, network_key=network.id,
                   vpc_id=VPC_IDS[network.vpc_pk], vpc_key=network.vpc_pk)


def host_network(lab):
    return HostNetwork(prefix=lab.inside, namespaces=f'rsvt-r-{lab.tag}-')


@needs_root
def test_a_segment_is_made_once_with_its_gateway_in_the_vpc_router(lab):
    network = host_network(lab)
    lab.namespaces.append(network.router_namespace(VPC_IDS[1]))
    network.ensure_segment(nic_of(BLUE))
    network.ensure_segment(nic_of(BLUE))
    network._ready.clear()                    # as a new worker process would: set up again, no error
    network.ensure_segment(nic_of(BLUE))
    assert 'inet ' not in sh(*lab.inside, 'ip', '-o', 'addr', 'show', 'dev', 'rsv-1').stdout
    assert 'master rsv-1' in sh(*lab.inside, 'ip', 'link', 'show', 'dev', 'rsv-g1').stdout
    router_side = sh('ip', 'netns', 'exec', network.router_namespace(VPC_IDS[1]), 'ip', '-o', 'addr', 'show').stdout
    assert '10.0.0.1/20' in router_side
    assert sh(*lab.inside, 'ip', '-o', 'link', 'show', 'type', 'bridge').stdout.count('rsv-1:') == 1


@needs_root
def test_a_router_name_left_without_its_namespace_is_made_again(lab):
    # What a server killed inside a mount namespace of its own leaves: the name, and no namespace behind it.
    network = host_network(lab)
    name = network.router_namespace(VPC_IDS[1])
    lab.namespaces.append(name)
    with open(f'/run/netns/{name}', 'w'):
        pass
    network.ensure_segment(nic_of(BLUE))
    router_side = sh('ip', 'netns', 'exec', name, 'ip', '-o', 'addr', 'show').stdout
    assert '10.0.0.1/20' in router_side


@needs_root
def test_a_router_made_again_at_once_replaces_links_its_removed_namespace_left(lab):
    # The kernel destroys a deleted namespace's interfaces in the background: right after a router is
    # removed, the host ends of its links may still be there, with nothing at the other end.
    network = host_network(lab)
    name = network.router_namespace(VPC_IDS[1])
    lab.namespaces.append(name)
    sh(*lab.inside, 'ip', 'link', 'add', 'rsv-u1', 'type', 'veth', 'peer', 'name', 'leftover-u')
    sh(*lab.inside, 'ip', 'link', 'add', 'rsv-g1', 'type', 'veth', 'peer', 'name', 'leftover-g')
    network.ensure_segment(nic_of(BLUE))
    router_side = sh('ip', 'netns', 'exec', name, 'ip', '-o', 'link', 'show').stdout
    assert 'up0@' in router_side and 'g1@' in router_side
    assert 'leftover' not in sh(*lab.inside, 'ip', '-o', 'link', 'show').stdout


@needs_root
def test_simulated_hosts_get_no_bridge(lab, tmp_path):
    node = tmp_path / 'node.xml'
    node.write_text('<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>'
                    '<mhz>2000</mhz><model>x86_64</model></cpu><memory>2097152</memory></node>\n')
    driver = open_driver(f'test://{node}', InstanceFiles(tmp_path / 'instances'), host_network(lab))
    driver.deploy(LaunchSpec(instance_id='i-0123456789abcdef0', image_id='ami-0123456789abcdef0',
                             instance_type='t1.micro', vcpus=1, memory_mib=128, zone='z', root=None,
                             nics=(nic_of(BLUE),)))
    driver.close()
    assert sh(*lab.inside, 'ip', 'link', 'show', 'dev', 'rsv-1', check=False).returncode != 0


@needs_root
def test_vlan_subinterface_joins_the_bridge(lab):
    sh(*lab.inside, 'ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0-peer')
    if sh(*lab.inside, 'ip', 'link', 'add', 'link', 'up0', 'name', 'probe', 'type', 'vlan', 'id', '1',
          check=False).returncode != 0:
        pytest.skip('this kernel has no 802.1Q VLAN support')
    tagged = NetworkRow(id=4, name='tagged', cidr='10.2.0.0/20', gateway='10.2.0.1', bridge=None, vlan=42, vpc_pk=1)
    network = HostNetwork(uplink='up0', prefix=lab.inside, namespaces=f'rsvt-r-{lab.tag}-')
    lab.namespaces.append(network.router_namespace(VPC_IDS[1]))
    network.ensure_segment(nic_of(tagged))
    shown = sh(*lab.inside, 'ip', '-d', 'link', 'show', 'dev', 'up0.42').stdout
    assert 'master rsv-4' in shown and 'vlan protocol 802.1Q id 42' in shown


@needs_root
def test_vpcs_with_the_same_addresses_stay_apart_and_elastic_ips_cross(lab):
    network = host_network(lab)
    lab.namespaces += [network.router_namespace(vpc_id) for vpc_id in VPC_IDS.values()]
    # The host's own address, the source of its pings to elastic IPs.
    sh(*lab.inside, 'ip', 'link', 'add', 'outside', 'type', 'veth', 'peer', 'name', 'outside-p')
    sh(*lab.inside, 'ip', 'addr', 'add', '198.51.100.1/32', 'dev', 'outside')
    sh(*lab.inside, 'ip', 'link', 'set', 'outside', 'up')
    blue, teal, green = router(1, (BLUE, TEAL)), None, router(2, (GREEN,))
    network.apply(Desired((blue, green)))
    blue_a = lab.guest('a', 'rsv-1', '10.0.0.5/20', '10.0.0.1')
    lab.guest('b', 'rsv-1', '10.0.0.6/20', '10.0.0.1')
    teal = lab.guest('t', 'rsv-3', '10.2.0.5/20', '10.2.0.1')
    green_c = lab.guest('c', 'br-green', '10.0.0.7/20', '10.0.0.1')

    assert reaches(blue_a, '10.0.0.6'), 'same subnet'
    assert reaches(teal, '10.0.0.5'), 'two subnets of one VPC route to each other'
    assert reaches(green_c, '10.0.0.1'), 'the other VPC has a router of its own'
    assert not reaches(green_c, '10.0.0.5') and not reaches(green_c, '10.0.0.6'), 'crossed into another VPC'
    assert not reaches(green_c, '10.2.0.5')

    network.apply(Desired((router(1, (BLUE, TEAL), ((ELASTIC_IP, '10.0.0.5'),)), green)))
    assert reaches(lab.inside, ELASTIC_IP), 'the host reaches the elastic IP'
    assert not reaches(green_c, ELASTIC_IP), 'without a public address of its own nothing leaves a VPC'
    network.apply(Desired((router(1, (BLUE, TEAL), ((ELASTIC_IP, '10.0.0.5'),)),
                           router(2, (GREEN,), ((OTHER_ELASTIC_IP, '10.0.0.7'),)))))
    assert reaches(green_c, ELASTIC_IP), 'public address to public address crosses VPCs'
    assert not reaches(green_c, '10.0.0.5')

    network.apply(Desired((blue, green)))      # disassociated: rules, addresses and routes are gone
    assert not reaches(lab.inside, ELASTIC_IP)
    assert ELASTIC_IP not in sh(*lab.inside, 'ip', 'route', 'show').stdout
    assert ELASTIC_IP not in sh('ip', 'netns', 'exec', network.router_namespace(VPC_IDS[1]), 'iptables-save').stdout
    assert sh(*lab.inside, 'iptables-save').stdout.count(f'-A FORWARD -j {FORWARD_CHAIN}') == 1

    network.apply(Desired((blue,)))            # a VPC without instances here loses its router
    assert network.router_namespace(VPC_IDS[2]) not in sh('ip', 'netns', 'list').stdout
    assert reaches(blue_a, '10.0.0.6')
