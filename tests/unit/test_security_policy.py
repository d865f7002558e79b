"""The firewall policy read from the database, and the tables a simulated host is given from it."""
import collections
import subprocess

import pytest

from backend.config import load_config
from backend.cloud import Cloud
from backend.instances import LaunchRequest
from backend.networking import nft_ruleset
from backend.networking.host_firewall import simulated_rules
from backend.networking.host_network import tap_name, tap_prefix
from backend.networking.security_groups import permission
from backend.networking.security_policy import desired_policy
from backend.worker import Worker


@pytest.fixture
def setup(tmp_path):
    cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(tmp_path),
                                    'RESERVOIR_SECURITY_GROUPS_SIMULATED_HOST_RULES': 'true'}))
    alice, bob = cloud.users.create('alice'), cloud.users.create('bob')
    disk = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image = cloud.images.register_file(disk, 'tiny', alice.account_id, public=True)
    cloud.hosts.add_simulated(1, cpus=64, memory_mib=65536)
    worker = Worker(cloud)
    worker.claim_hosts()
    yield cloud, worker, alice.account_id, bob.account_id, image.image_id
    worker.stop()
    cloud.close()


def launch(cloud, owner, image_id, count=1, **extra):
    return [i.instance_id for i in cloud.instances.run(owner, LaunchRequest(image_id, count, count, 'm1.small', **extra))]


def policy_of(cloud, worker):
    with cloud.db.read() as session:
        return desired_policy(session, list(worker.owned_hosts()), worker.installation)


def test_ports_carry_their_groups_addresses_and_tap_names(setup):
    cloud, worker, alice, bob, image_id = setup
    web = cloud.security_groups.create(alice, 'web', 'web servers')
    cloud.security_groups.authorize(alice, [permission('tcp', 22, 22, cidr='10.1.2.3/32'),
                                            permission('tcp', 22, 22, cidr='10.1.2.0/24'),
                                            permission('tcp', 80, 80, peer_group_id='default')], False, group_id=web)
    default_ids = launch(cloud, alice, image_id, 2)
    launch(cloud, alice, image_id, security_group_ids=(web,))
    launch(cloud, bob, image_id)
    policy = policy_of(cloud, worker)
    assert len(policy.ports) == 4
    # Alice's two default-group ports, her web port, and Bob's port in a default group of his own.
    counted = collections.Counter(p.groups for p in policy.ports)
    assert sorted(counted.values()) == [1, 1, 2] and counted[(web,)] == 1
    [alice_default] = [groups for groups, count in counted.items() if count == 2]
    assert all(len(groups) == 1 for groups in counted)
    # Rules of one protocol and port are merged, their CIDRs collapsed; a peer group's members are listed.
    [web_policy] = [g for g in policy.groups if g.group_id == web]
    ssh = [p for p in web_policy.ingress if p.from_port == 22]
    assert [p.cidrs for p in ssh] == [('10.1.2.0/24',)]
    private_ips = sorted(i.private_ip for i in cloud.instances.describe(alice, ids=default_ids))
    assert dict(policy.members)[alice_default[0]] == tuple(private_ips)
    # Tap names are the installation's and fit the kernel's limit.
    assert all(p.tap.startswith(tap_prefix(worker.installation)) and len(p.tap) == 15 for p in policy.ports)
    assert len({p.tap for p in policy.ports}) == 4
    assert tap_name('/a', 'eni-attach-1') != tap_name('/b', 'eni-attach-1')


def test_terminated_instances_leave_the_policy_and_stopped_ones_keep_their_port(setup):
    cloud, worker, alice, _bob, image_id = setup
    first, second = launch(cloud, alice, image_id, 2)
    worker.dispatch(wait=True)
    cloud.instances.terminate(alice, [first])
    worker.dispatch(wait=True)
    worker.dispatch(wait=True)
    assert len(policy_of(cloud, worker).ports) == 1


def test_simulated_hosts_write_rules_only_when_configured_to(tmp_path):
    cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(tmp_path)}))
    try:
        cloud.hosts.add_simulated(1, cpus=4, memory_mib=4096)
        worker = Worker(cloud)
        worker.claim_hosts()
        assert not worker.firewall.reconcile(cloud.db, worker.owned_hosts(), generation=1)
        assert not (tmp_path / 'firewall').exists()
    finally:
        cloud.close()


def test_a_simulated_host_is_given_the_tables_and_then_only_the_change(setup):
    cloud, worker, alice, _bob, image_id = setup
    web = cloud.security_groups.create(alice, 'web', 'web servers')
    launch(cloud, alice, image_id, security_group_ids=(web,))
    assert worker.firewall.reconcile(cloud.db, worker.owned_hosts(), generation=1)
    [host_id] = worker.owned_hosts()
    files = cloud.config.home / 'firewall'
    tables = simulated_rules(files, host_id)
    assert 'delete table inet' in tables and f'g-{web}-in' in tables and 'tcp dport 443' not in tables

    cloud.security_groups.authorize(alice, [permission('tcp', 443, 443, cidr='0.0.0.0/0')], False, group_id=web)
    assert worker.firewall.reconcile(cloud.db, worker.owned_hosts(), generation=2)
    change = (files / f'{host_id}.change.nft').read_text()
    assert change.splitlines() == [f'flush chain inet {worker.firewall.name} g-{web}-in',
                                   f'add rule inet {worker.firewall.name} g-{web}-in tcp dport 443 accept']
    assert 'tcp dport 443 accept' in simulated_rules(files, host_id)
    assert not worker.firewall.reconcile(cloud.db, worker.owned_hosts(), generation=3), 'nothing changed'


def test_scripts_between_equal_tables_are_empty_and_set_types_force_a_rebuild():
    from backend.networking.security_policy import EMPTY
    inet, bridge = nft_ruleset.tables(EMPTY, 'rsv_x', 'r000')
    assert nft_ruleset.change_script(inet, inet) == '' and nft_ruleset.change_script(bridge, bridge) == ''
    changed = nft_ruleset.Table('inet', 'rsv_x', {**inet.sets, 'bridges': nft_ruleset.NftSet('type ipv4_addr;',
                                                                                              frozenset())},
                                inet.chains)
    assert nft_ruleset.change_script(inet, changed) is None


def test_each_simulated_host_gets_the_policy_of_its_own_ports(setup):
    from backend.networking.security_policy import policies_by_host
    cloud, worker, alice, _bob, image_id = setup
    cloud.hosts.add_simulated(1, cpus=64, memory_mib=65536)
    worker.claim_hosts()
    hosts = {host.name: host.host_id for host in cloud.hosts.list()}
    assert len(hosts) == 2
    web = cloud.security_groups.create(alice, 'web', 'web servers')
    for name, count, groups in zip(sorted(hosts), (1, 2), ((web,), ())):
        launch(cloud, alice, image_id, count, host_name=name, security_group_ids=groups)
    with cloud.db.read() as session:
        policies = policies_by_host(session, list(hosts.values()), worker.installation)
        together = desired_policy(session, list(hosts.values()), worker.installation)
    first, second = (policies[hosts[name]] for name in sorted(hosts))
    assert (len(first.ports), len(second.ports)) == (1, 2)
    assert [g.group_id for g in first.groups] == [web] and web not in [g.group_id for g in second.groups]
    assert sorted(p.tap for p in together.ports) == sorted(p.tap for p in first.ports + second.ports)
