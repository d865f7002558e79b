"""Bridges, isolation and elastic IP NAT on a host, checked in network namespaces this test makes.

The "host" is a namespace; each "guest" is a namespace with a veth into one of the host's bridges
and the network's gateway as its default route. Forwarding is on in the host namespace, so what
keeps networks apart is the firewall, not the lack of routing. Nothing leaves the namespaces.
"""
import os
import secrets
import shutil
import subprocess

import pytest

from backend.drivers import open_driver
from backend.drivers.base import LaunchSpec, NicSpec
from backend.drivers.instance_files import InstanceFiles
from backend.networking.host_network import (DNAT_CHAIN, FORWARD_CHAIN, ISOLATE_CHAIN, Desired, HostNetwork, Segment,
                                  bridge_name, filter_rules, nat_rules)
from backend.models import Network as NetworkRow

BLUE = NetworkRow(id=1, name='blue', cidr='10.0.0.0/20', gateway='10.0.0.1', bridge=None, vlan=None)
GREEN = NetworkRow(id=2, name='green', cidr='10.1.0.0/20', gateway='10.1.0.1', bridge='br-green', vlan=None)
SEGMENTS = (Segment.of(BLUE), Segment.of(GREEN))
ELASTIC_IP = '192.0.2.10'


# -- the rules, as text ------------------------------------------------------------------------------

def test_bridge_names():
    assert bridge_name(BLUE) == 'rsv-1'
    assert bridge_name(GREEN) == 'br-green'


def test_filter_rules_drop_routing_between_networks_only():
    rules = filter_rules(SEGMENTS)
    assert f'-A {FORWARD_CHAIN} -i rsv-1 -o rsv-1 -j RETURN' in rules
    assert f'-A {FORWARD_CHAIN} -i br-green -j {ISOLATE_CHAIN}' in rules
    assert f'-A {ISOLATE_CHAIN} -o rsv-1 -j DROP' in rules
    assert f'-A {ISOLATE_CHAIN} -o br-green -j DROP' in rules
    # Same-network returns come before the jump to isolation.
    assert rules.index(f'-A {FORWARD_CHAIN} -i rsv-1 -o rsv-1 -j RETURN') < \
        rules.index(f'-A {FORWARD_CHAIN} -i rsv-1 -j {ISOLATE_CHAIN}')


def test_nat_rules_one_pair_per_association():
    rules = nat_rules(SEGMENTS, ((ELASTIC_IP, '10.0.0.5'),))
    assert f'-A {DNAT_CHAIN} -d {ELASTIC_IP}/32 -j DNAT --to-destination 10.0.0.5' in rules
    assert f'-A RSV-SNAT -s 10.0.0.5/32 -j SNAT --to-source {ELASTIC_IP}' in rules
    assert rules.index('-A RSV-SNAT -d 10.1.0.0/20 -j RETURN') < \
        rules.index(f'-A RSV-SNAT -s 10.0.0.5/32 -j SNAT --to-source {ELASTIC_IP}')
    assert not [rule for rule in nat_rules(SEGMENTS, ()) if 'NAT --to' in rule]


# -- the rules, applied in namespaces ----------------------------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ('ip', 'iptables-restore', 'ping')),
    reason='needs root, iproute2, iptables and ping to make network namespaces')


def sh(*command, check=True):
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=30)


class Lab:
    def __init__(self):
        self.tag = secrets.token_hex(3)
        self.host = f'rsvt-h-{self.tag}'
        self.namespaces = [self.host]
        sh('ip', 'netns', 'add', self.host)
        self.inside = ('ip', 'netns', 'exec', self.host)
        sh(*self.inside, 'ip', 'link', 'set', 'lo', 'up')
        sh(*self.inside, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')

    def guest(self, name, bridge, address, gateway):
        namespace = f'rsvt-{name}-{self.tag}'
        sh('ip', 'netns', 'add', namespace)
        self.namespaces.append(namespace)
        port = f'p{name}{self.tag}'[:15]
        sh('ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', f'g{name}{self.tag}'[:15])
        sh('ip', 'link', 'set', port, 'netns', self.host)
        sh('ip', 'link', 'set', f'g{name}{self.tag}'[:15], 'netns', namespace)
        sh(*self.inside, 'ip', 'link', 'set', port, 'master', bridge, 'up')
        guest = ('ip', 'netns', 'exec', namespace)
        sh(*guest, 'ip', 'link', 'set', f'g{name}{self.tag}'[:15], 'name', 'eth0')
        sh(*guest, 'ip', 'addr', 'add', address, 'dev', 'eth0')
        sh(*guest, 'ip', 'link', 'set', 'eth0', 'up')
        sh(*guest, 'ip', 'route', 'add', 'default', 'via', gateway)
        return guest

    def close(self):
        for namespace in self.namespaces:
            sh('ip', 'netns', 'delete', namespace, check=False)


def reaches(namespace_prefix, address):
    return sh(*namespace_prefix, 'ping', '-c', '1', '-W', '2', address, check=False).returncode == 0


@pytest.fixture
def lab():
    lab = Lab()
    yield lab
    lab.close()


def nic_of(network):
    """eth0 of an instance on `network`, as the worker hands it to a host driver."""
    return NicSpec(mac='02:00:0a:00:00:05', ip='10.0.0.5', cidr=network.cidr, gateway=network.gateway,
                   bridge=bridge_name(network), vlan=network.vlan)


@needs_root
def test_bridges_are_made_once_with_the_gateway(lab):
    network = HostNetwork(prefix=lab.inside)
    network.ensure_segment(nic_of(BLUE))
    network.ensure_segment(nic_of(BLUE))
    network._ready.clear()                    # as a new worker process would: set up again, no error
    network.ensure_segment(nic_of(BLUE))
    shown = sh(*lab.inside, 'ip', '-o', 'addr', 'show', 'dev', 'rsv-1').stdout
    assert '10.0.0.1/20' in shown
    assert sh(*lab.inside, 'ip', '-o', 'link', 'show', 'type', 'bridge').stdout.count('rsv-1:') == 1


@needs_root
def test_simulated_hosts_get_no_bridge(lab, tmp_path):
    node = tmp_path / 'node.xml'
    node.write_text('<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>'
                    '<mhz>2000</mhz><model>x86_64</model></cpu><memory>2097152</memory></node>\n')
    driver = open_driver(f'test://{node}', InstanceFiles(tmp_path / 'instances'), HostNetwork(prefix=lab.inside))
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
    tagged = NetworkRow(id=3, name='tagged', cidr='10.2.0.0/20', gateway='10.2.0.1', bridge=None, vlan=42)
    HostNetwork(uplink='up0', prefix=lab.inside).ensure_segment(nic_of(tagged))
    shown = sh(*lab.inside, 'ip', '-d', 'link', 'show', 'dev', 'up0.42').stdout
    assert 'master rsv-3' in shown and 'vlan protocol 802.1Q id 42' in shown


@needs_root
def test_networks_are_isolated_and_elastic_ips_are_natted(lab):
    network = HostNetwork(prefix=lab.inside)
    for row in (BLUE, GREEN):
        network.ensure_segment(nic_of(row))
    blue_a = lab.guest('a', 'rsv-1', '10.0.0.5/20', '10.0.0.1')
    lab.guest('b', 'rsv-1', '10.0.0.6/20', '10.0.0.1')
    green = lab.guest('c', 'br-green', '10.1.0.5/20', '10.1.0.1')

    network.apply(Desired(SEGMENTS, ()))
    assert reaches(blue_a, '10.0.0.6'), 'same network'
    assert not reaches(blue_a, '10.1.0.5'), 'blue reached green'
    assert not reaches(green, '10.0.0.5'), 'green reached blue'

    network.apply(Desired((), ()))            # without the rules, forwarding would connect them
    assert reaches(blue_a, '10.1.0.5')

    network.apply(Desired(SEGMENTS, ((ELASTIC_IP, '10.0.0.5'),)))
    assert not reaches(green, '10.0.0.5')
    assert reaches(lab.inside, ELASTIC_IP), 'the host reaches the elastic IP'
    assert reaches(green, ELASTIC_IP), 'another network reaches the elastic IP'

    network.apply(Desired(SEGMENTS, ()))      # disassociated: the rules are gone
    assert not reaches(lab.inside, ELASTIC_IP)
    assert ELASTIC_IP not in sh(*lab.inside, 'ip', '-o', 'addr', 'show').stdout
    saved = sh(*lab.inside, 'iptables-save').stdout
    assert ELASTIC_IP not in saved
    assert saved.count(f'-A FORWARD -j {FORWARD_CHAIN}') == 1   # applying again adds no second jump
