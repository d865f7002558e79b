"""Moving instances through the administrator's commands against a live server on simulated hosts:
`instance migrate`, `host evacuate`, and `host rebalance --policy packing --standby`, while the
account's boto3 keeps seeing its instances running."""
import json

import pytest

from tests.support.server import simulated_cloud
from tests.support.waiting import wait_for

FAST = {'Delay': 1, 'MaxAttempts': 60}


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('moves'), ('alice',), hosts=4, cpus=4, memory_mib=4096)
    yield live
    live.stop()


def hosts_of(site):
    return {row['instance_id']: row['host_name'] for row in json.loads(site.admin('instance', 'list', '--json'))}


def hosts(site):
    return {row['name']: row for row in json.loads(site.admin('host', 'list', '--json'))}


def test_migrate_evacuate_and_pack(site):
    ec2 = site.client('alice')
    ids = [i['InstanceId'] for i in ec2.run_instances(ImageId=site.image_id, MinCount=4, MaxCount=4,
                                                      InstanceType='t1.micro')['Instances']]
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=FAST)
    assert len(set(hosts_of(site)[i] for i in ids)) == 4          # striped: one per host

    # One instance, to a named host, cold.
    first_host = hosts_of(site)[ids[0]]
    target = next(name for name in hosts(site) if name != first_host)
    (move,) = json.loads(site.admin('instance', 'migrate', ids[0], '--host', target, '--cold', '--json'))
    assert (move['source'], move['target'], move['outcome']) == (first_host, target, 'moved')
    assert hosts_of(site)[ids[0]] == target
    assert ec2.describe_instances(InstanceIds=[ids[0]])['Reservations'][0]['Instances'][0]['State']['Name'] == 'running'

    # Evacuation disables the host and moves what ran there.
    moves = json.loads(site.admin('host', 'evacuate', target, '--json'))
    assert moves and all(m['outcome'] == 'moved' for m in moves)
    assert target not in hosts_of(site).values() and not hosts(site)[target]['enabled']
    site.admin('host', 'enable', target)

    # Packing: the plan first, then the moves; emptied hosts go on standby.
    planned = json.loads(site.admin('host', 'rebalance', '--policy', 'packing', '--dry-run', '--json'))
    assert planned['moves']
    done = json.loads(site.admin('host', 'rebalance', '--policy', 'packing', '--standby', '--json'))
    assert all(m['outcome'] == 'moved' for m in done['moves'])
    listed = hosts(site)
    assert len({hosts_of(site)[i] for i in ids}) == 1
    assert sorted(done['emptied']) == sorted(name for name, row in listed.items() if row['standby'])
    assert all(row['used_cpus'] <= row['cpus'] for row in listed.values())
    wait_for(lambda: {i['State']['Name'] for r in ec2.describe_instances(InstanceIds=ids)['Reservations']
                      for i in r['Instances']} == {'running'})
    ec2.terminate_instances(InstanceIds=ids)


def state_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]['State']['Name']


def test_stopped_instances_leave_an_evacuated_host_and_start_elsewhere(site):
    for name in hosts(site):
        site.admin('host', 'enable', name)
    ec2 = site.client('alice')
    ids = [i['InstanceId'] for i in ec2.run_instances(ImageId=site.image_id, MinCount=2, MaxCount=2,
                                                      InstanceType='t1.micro')['Instances']]
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=FAST)
    ec2.stop_instances(InstanceIds=ids)
    ec2.get_waiter('instance_stopped').wait(InstanceIds=ids, WaiterConfig=FAST)

    # Evacuation takes the stopped instance along; it stays stopped, on its new host.
    evacuated = hosts_of(site)[ids[0]]
    moves = [m for m in json.loads(site.admin('host', 'evacuate', evacuated, '--json')) if m['instance_id'] == ids[0]]
    assert [(m['source'], m['outcome'], m['live']) for m in moves] == [(evacuated, 'moved', False)]
    assert hosts_of(site)[ids[0]] == moves[0]['target'] and evacuated not in {hosts_of(site)[i] for i in ids}
    assert state_of(ec2, ids[0]) == 'stopped'

    # Started while its host is disabled, an instance starts on another host.
    disabled = hosts_of(site)[ids[1]]
    site.admin('host', 'disable', disabled)
    ec2.start_instances(InstanceIds=ids)
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=FAST)
    placed = hosts_of(site)
    assert {placed[i] for i in ids}.isdisjoint({disabled, evacuated})
    assert all(row['used_cpus'] <= row['cpus'] for row in hosts(site).values())
    ec2.terminate_instances(InstanceIds=ids)
