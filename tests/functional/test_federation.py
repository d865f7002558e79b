"""Cloud bursting: a second Reservoir, registered as an ec2+http host of the first with its own user's
keys (signing in SigV4, and again in SigV2), takes the launches the first's local hosts have no room for. Through the first's endpoint the
user sees them run, stops, starts, reboots and terminates them; a peer that stops answering leaves
them impaired, not terminated, and one terminated on the peer behind the first's back ends there too."""
import json
import time

import pytest

from tests.support.server import simulated_cloud
from tests.support.waiting import wait_for

FAST = {'Delay': 1, 'MaxAttempts': 60}
TAG = 'reservoir:instance-id'


@pytest.fixture(scope='module', params=['v4', 'v2'])
def clouds(tmp_path_factory, request):
    """(site, peer): the peer signed to in SigV4, then again in SigV2 as Nimbus-era peers were."""
    # The peer is another installation: its own prefix for what it makes on a machine, its own pool.
    peer = simulated_cloud(tmp_path_factory.mktemp('peer-cloud'), ('partner',),
                           extra_env={'RESERVOIR_CLOUD_HOST_PREFIX': 'peer',
                                      'RESERVOIR_COMPUTE_PUBLIC_POOL': '198.51.100.0/24'})
    site = simulated_cloud(tmp_path_factory.mktemp('site-cloud'), ('alice',), hosts=1, cpus=1, memory_mib=1024,
                           start=False)
    partner = peer.users['partner']
    site.admin('host', 'add', f'ec2+http://127.0.0.1:{peer.port}/', '--name', 'partner-cloud', '--region',
               'reservoir-1', '--access-key', partner['access_key_id'], '--secret-key',
               partner['secret_access_key'], '--capacity', 't1.micro=4', '--signature', request.param)
    site.admin('image', 'map', site.image_id, '--host', 'partner-cloud', '--peer-image', peer.image_id)
    site.start()
    yield site, peer
    site.stop()
    peer.stop()


def host_of(site, instance_id):
    listed = json.loads(site.admin('instance', 'list', '--json'))
    return next(row['host_name'] for row in listed if row['instance_id'] == instance_id)


def state_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]['State']['Name']


def on_peer(peer, instance_id):
    partner = peer.client('partner')
    found = [i for r in partner.describe_instances(Filters=[{'Name': f'tag:{TAG}', 'Values': [instance_id]}])[
        'Reservations'] for i in r['Instances']]
    return found[0] if found else None


def launch(ec2, image_id):
    (instance,) = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro')['Instances']
    ec2.get_waiter('instance_running').wait(InstanceIds=[instance['InstanceId']], WaiterConfig=FAST)
    return instance['InstanceId']


def test_a_launch_the_local_hosts_cannot_take_bursts_onto_the_peer(clouds):
    site, peer = clouds
    ec2 = site.client('alice')
    local = launch(ec2, site.image_id)
    assert host_of(site, local) != 'partner-cloud', 'a peer was used while a local host had room'
    burst = launch(ec2, site.image_id)
    assert host_of(site, burst) == 'partner-cloud'
    peer_instance = on_peer(peer, burst)
    assert peer_instance['State']['Name'] == 'running'
    # The console is the peer's, fetched through the driver.
    assert peer_instance['InstanceId'] in ec2.get_console_output(InstanceId=burst)['Output']  # decoded by botocore

    ec2.stop_instances(InstanceIds=[burst])
    ec2.get_waiter('instance_stopped').wait(InstanceIds=[burst], WaiterConfig=FAST)
    assert on_peer(peer, burst)['State']['Name'] == 'stopped'
    ec2.start_instances(InstanceIds=[burst])
    ec2.get_waiter('instance_running').wait(InstanceIds=[burst], WaiterConfig=FAST)
    assert on_peer(peer, burst)['State']['Name'] == 'running'
    ec2.reboot_instances(InstanceIds=[burst])
    wait_for(lambda: state_of(ec2, burst) == 'running')

    ec2.terminate_instances(InstanceIds=[burst, local])
    ec2.get_waiter('instance_terminated').wait(InstanceIds=[burst, local], WaiterConfig=FAST)
    wait_for(lambda: on_peer(peer, burst)['State']['Name'] == 'terminated')


def test_an_unreachable_peer_leaves_its_instances_impaired_and_they_heal(clouds):
    site, peer = clouds
    ec2 = site.client('alice')
    local = launch(ec2, site.image_id)
    burst = launch(ec2, site.image_id)
    assert host_of(site, burst) == 'partner-cloud'
    peer.kill()
    try:
        wait_for(lambda: _internal_state(site, burst) == 'impaired', timeout=60)
        assert state_of(ec2, burst) != 'terminated'
    finally:
        peer.start()
    wait_for(lambda: _internal_state(site, burst) == 'running', timeout=60)

    # Terminated on the peer by someone else: it ends here too, with the reason.
    peer.client('partner').terminate_instances(InstanceIds=[on_peer(peer, burst)['InstanceId']])
    ec2.get_waiter('instance_terminated').wait(InstanceIds=[burst], WaiterConfig=FAST)
    shown = ec2.describe_instances(InstanceIds=[burst])['Reservations'][0]['Instances'][0]
    assert 'peer' in shown['StateReason']['Message']
    ec2.terminate_instances(InstanceIds=[local])


def _internal_state(site, instance_id):
    listed = json.loads(site.admin('instance', 'list', '--json'))
    return next(row['state'] for row in listed if row['instance_id'] == instance_id)


def test_a_restarted_site_finds_its_burst_instance_and_launches_no_second(clouds):
    site, peer = clouds
    ec2 = site.client('alice')
    local = launch(ec2, site.image_id)
    burst = launch(ec2, site.image_id)
    site.kill()
    site.start()
    time.sleep(3)                      # a monitor round or two of the new worker
    partner = peer.client('partner')
    copies = [i for r in partner.describe_instances(Filters=[{'Name': f'tag:{TAG}', 'Values': [burst]}])[
        'Reservations'] for i in r['Instances'] if i['State']['Name'] != 'terminated']
    assert len(copies) == 1
    assert state_of(ec2, burst) == 'running'
    ec2.terminate_instances(InstanceIds=[burst, local])
    ec2.get_waiter('instance_terminated').wait(InstanceIds=[burst, local], WaiterConfig=FAST)


def test_a_burst_reservation_shows_the_peers_addresses_and_mirrors_tags(clouds):
    site, peer = clouds
    ec2 = site.client('alice')
    launched = ec2.run_instances(ImageId=site.image_id, MinCount=3, MaxCount=3, InstanceType='t1.micro',
                                 TagSpecifications=[{'ResourceType': 'instance',
                                                     'Tags': [{'Key': 'team', 'Value': 'red'}]}])['Instances']
    ids = [i['InstanceId'] for i in launched]
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=FAST)
    burst = [i for i in ids if host_of(site, i) == 'partner-cloud']
    local = [i for i in ids if i not in burst]
    assert len(burst) == 2 and len(local) == 1
    # The peer launched the reservation's burst instances together, with the user's tags.
    on_the_peer = [on_peer(peer, i) for i in burst]
    assert len({i['InstanceId'] for i in on_the_peer}) == 2
    assert all({'Key': 'team', 'Value': 'red'} in i['Tags'] for i in on_the_peer)
    partner = peer.client('partner')
    peer_reservations = {r['ReservationId'] for r in partner.describe_instances(
        InstanceIds=[i['InstanceId'] for i in on_the_peer])['Reservations']}
    assert len(peer_reservations) == 1

    # Their addresses are the peer's, and no lease or interface of this cloud is held for them.
    def shown(instance_id):
        return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]
    for instance_id, there in zip(burst, on_the_peer):
        wait_for(lambda: shown(instance_id).get('PrivateIpAddress') == there['PrivateIpAddress'])
        assert shown(instance_id).get('PublicIpAddress') == there.get('PublicIpAddress')
        assert shown(instance_id)['NetworkInterfaces'] == [] and 'SubnetId' not in shown(instance_id)
    attached = ec2.describe_network_interfaces(Filters=[{'Name': 'attachment.instance-id', 'Values': ids}])
    assert [i['Attachment']['InstanceId'] for i in attached['NetworkInterfaces']] == local

    # Tags changed here follow to the peer.
    ec2.create_tags(Resources=[burst[0]], Tags=[{'Key': 'stage', 'Value': 'beta'}])
    ec2.delete_tags(Resources=[burst[0]], Tags=[{'Key': 'team'}])
    wait_for(lambda: {(t['Key'], t['Value']) for t in on_peer(peer, burst[0])['Tags']
                      if not t['Key'].startswith('reservoir:')} == {('stage', 'beta')}, timeout=30)

    # What only this cloud's network and storage can give is refused clearly, not attempted.
    address = ec2.allocate_address(Domain='vpc')
    with pytest.raises(ec2.exceptions.ClientError, match='UnsupportedOperation'):
        ec2.associate_address(InstanceId=burst[0], AllocationId=address['AllocationId'])
    ec2.release_address(AllocationId=address['AllocationId'])
    volume = ec2.create_volume(AvailabilityZone=launched[0]['Placement']['AvailabilityZone'], Size=1)
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume['VolumeId']], WaiterConfig=FAST)
    with pytest.raises(ec2.exceptions.ClientError, match='UnsupportedOperation'):
        ec2.attach_volume(VolumeId=volume['VolumeId'], InstanceId=burst[0], Device='/dev/sdf')
    ec2.delete_volume(VolumeId=volume['VolumeId'])
    # A launch into a subnet of this cloud cannot burst, and says why.
    subnet = ec2.describe_subnets()['Subnets'][0]['SubnetId']
    with pytest.raises(ec2.exceptions.ClientError, match='peer cloud cannot run it'):
        ec2.run_instances(ImageId=site.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro', SubnetId=subnet)

    ec2.terminate_instances(InstanceIds=ids)
    ec2.get_waiter('instance_terminated').wait(InstanceIds=ids, WaiterConfig=FAST)
