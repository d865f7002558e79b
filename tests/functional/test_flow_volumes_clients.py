"""The volume and snapshot flows with the AWS CLI (and its waiters), boto 2 (SigV4 and SigV2) and
apache-libcloud, as their users write them: create a volume, wait for it, attach it to an instance, find
it with filters, detach it, delete it; snapshot a volume, wait for the snapshot, find it, restore a volume
from it, share it with another account (which restores or copies it), delete it all. (boto3 is in
test_volumes_boto3.py and test_snapshots_boto3.py.)"""
import boto.exception
import pytest
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver
from libcloud.compute.types import VolumeSnapshotState

from tests.support.awscli import Cli
from tests.support.boto2 import connect
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients


def libcloud_driver(server, user):
    credentials = server.users[user]
    driver = EC2NodeDriver(credentials['access_key_id'], credentials['secret_access_key'], signature_version='4',
                           secure=False, host=server.host, port=server.port)
    driver.region_name = server.region
    return driver


def test_the_volume_flow_with_the_aws_cli(compute_server):
    cli = Cli(compute_server, compute_server.new_user('awscli-volumes'))
    zone = cli.run('describe-availability-zones')['AvailabilityZones'][0]['ZoneName']
    instance = cli.run('run-instances', '--image-id', compute_server.image_id, '--instance-type', 't1.micro',
                       '--placement', f'AvailabilityZone={zone}')['Instances'][0]['InstanceId']
    cli.run('wait', 'instance-running', '--instance-ids', instance)
    volume_id = cli.run('create-volume', '--availability-zone', zone, '--size', '2', '--volume-type', 'gp3',
                        '--tag-specifications', 'ResourceType=volume,Tags=[{Key=Name,Value=data}]')['VolumeId']
    cli.run('wait', 'volume-available', '--volume-ids', volume_id)
    attached = cli.run('attach-volume', '--volume-id', volume_id, '--instance-id', instance, '--device', '/dev/sdf')
    assert attached['State'] == 'attaching'
    cli.run('wait', 'volume-in-use', '--volume-ids', volume_id)
    found = cli.run('describe-volumes', '--filters', 'Name=tag:Name,Values=data',
                    f'Name=attachment.instance-id,Values={instance}')['Volumes']
    assert [v['VolumeId'] for v in found] == [volume_id] and found[0]['Attachments'][0]['Device'] == '/dev/sdf'
    assert 'VolumeInUse' in cli.fail('delete-volume', '--volume-id', volume_id)
    cli.run('detach-volume', '--volume-id', volume_id)
    cli.run('wait', 'volume-available', '--volume-ids', volume_id)
    cli.run('delete-volume', '--volume-id', volume_id)
    cli.run('wait', 'volume-deleted', '--volume-ids', volume_id)
    cli.run('terminate-instances', '--instance-ids', instance)


@pytest.mark.parametrize('signature', ['sigv4', 'sigv2'])
def test_the_volume_flow_with_boto2(compute_server, signature):
    ec2 = connect(compute_server, compute_server.users[compute_server.new_user(f'boto2-volumes-{signature}')],
                  signature)
    zone = ec2.get_all_zones()[0].name
    reservation = ec2.run_instances(compute_server.image_id, instance_type='t1.micro', placement=zone)
    (instance,) = reservation.instances
    wait_for(lambda: instance.update() == 'running')
    volume = ec2.create_volume(1, zone, volume_type='gp2')
    wait_for(lambda: volume.update() == 'available')
    assert (volume.size, volume.zone, volume.type) == (1, zone, 'gp2')
    assert ec2.attach_volume(volume.id, instance.id, '/dev/sdf')
    wait_for(lambda: volume.update() == 'in-use' and volume.attachment_state() == 'attached')
    assert volume.attach_data.instance_id == instance.id and volume.attach_data.device == '/dev/sdf'
    (listed,) = ec2.get_all_volumes(filters={'attachment.device': '/dev/sdf'})
    assert listed.id == volume.id
    with pytest.raises(boto.exception.EC2ResponseError) as refused:
        ec2.delete_volume(volume.id)
    assert refused.value.error_code == 'VolumeInUse'
    assert ec2.detach_volume(volume.id)
    wait_for(lambda: volume.update() == 'available')
    assert ec2.delete_volume(volume.id)
    assert ec2.get_all_volumes() == []
    ec2.terminate_instances([instance.id])


def test_the_volume_flow_with_libcloud(compute_server):
    driver = libcloud_driver(compute_server, compute_server.new_user('libcloud-volumes'))
    location = driver.list_locations()[0]
    image = NodeImage(id=compute_server.image_id, name=None, driver=driver)
    size = NodeSize(id='t1.micro', name='t1.micro', ram=128, disk=1, bandwidth=None, price=None, driver=driver)
    node = driver.create_node(name='db', size=size, image=image, location=location)
    wait_for(lambda: driver.list_nodes(ex_node_ids=[node.id])[0].state == 'running')
    volume = driver.create_volume(1, 'db-data', location=location)
    wait_for(lambda: driver.list_volumes()[0].extra['state'] == 'available')
    assert driver.attach_volume(node, volume, '/dev/sdf')
    wait_for(lambda: [v.extra['state'] for v in driver.list_volumes(node)] == ['in-use'])
    (listed,) = driver.list_volumes(node)
    assert (listed.id, listed.name, listed.size) == (volume.id, 'db-data', 1)
    assert driver.detach_volume(volume)
    wait_for(lambda: driver.list_volumes()[0].extra['state'] == 'available')
    assert driver.destroy_volume(volume)
    assert driver.list_volumes() == []
    driver.destroy_node(node)


def test_the_snapshot_flow_with_the_aws_cli(compute_server):
    owner, friend = compute_server.new_user('awscli-snapshots'), compute_server.new_user('awscli-snapshots-friend')
    cli, other = Cli(compute_server, owner), Cli(compute_server, friend)
    friend_account = compute_server.users[friend]['account_id']
    zone = cli.run('describe-availability-zones')['AvailabilityZones'][0]['ZoneName']
    volume_id = cli.run('create-volume', '--availability-zone', zone, '--size', '2')['VolumeId']
    cli.run('wait', 'volume-available', '--volume-ids', volume_id)
    made = cli.run('create-snapshot', '--volume-id', volume_id, '--description', 'before the upgrade',
                   '--tag-specifications', 'ResourceType=snapshot,Tags=[{Key=app,Value=db}]')
    snapshot_id = made['SnapshotId']
    assert (made['VolumeId'], made['VolumeSize'], made['Description']) == (volume_id, 2, 'before the upgrade')
    assert made['State'] in ('pending', 'completed') and made['Tags'] == [{'Key': 'app', 'Value': 'db'}]
    cli.run('wait', 'snapshot-completed', '--snapshot-ids', snapshot_id)
    found = cli.run('describe-snapshots', '--owner-ids', 'self', '--filters', 'Name=tag:app,Values=db',
                    'Name=status,Values=completed', 'Name=description,Values=before*')['Snapshots']
    assert [(s['SnapshotId'], s['Progress']) for s in found] == [(snapshot_id, '100%')]
    assert cli.run('describe-snapshots', '--owner-ids', 'self', '--filters', 'Name=tag:app,Values=web')[
        'Snapshots'] == []

    restored = cli.run('create-volume', '--availability-zone', zone, '--snapshot-id', snapshot_id)
    assert (restored['Size'], restored['SnapshotId']) == (2, snapshot_id)
    cli.run('wait', 'volume-available', '--volume-ids', restored['VolumeId'])
    from_snapshot = cli.run('describe-volumes', '--filters', f'Name=snapshot-id,Values={snapshot_id}')['Volumes']
    assert [v['VolumeId'] for v in from_snapshot] == [restored['VolumeId']]

    # Shared with another account, which sees it and copies it; the owner does not see the copy.
    assert other.run('describe-snapshots', '--restorable-by-user-ids', 'self')['Snapshots'] == []
    cli.run('modify-snapshot-attribute', '--snapshot-id', snapshot_id, '--attribute', 'createVolumePermission',
            '--operation-type', 'add', '--user-ids', friend_account)
    shared = cli.run('describe-snapshot-attribute', '--snapshot-id', snapshot_id, '--attribute',
                     'createVolumePermission')
    assert shared == {'SnapshotId': snapshot_id, 'CreateVolumePermissions': [{'UserId': friend_account}]}
    seen = other.run('describe-snapshots', '--restorable-by-user-ids', 'self')['Snapshots']
    assert [(s['SnapshotId'], s['OwnerId']) for s in seen] == [(snapshot_id, compute_server.users[owner]['account_id'])]
    assert other.run('describe-snapshots', '--owner-ids', 'self')['Snapshots'] == []
    copy_id = other.run('copy-snapshot', '--source-region', compute_server.region, '--source-snapshot-id',
                        snapshot_id, '--description', 'my copy')['SnapshotId']
    other.run('wait', 'snapshot-completed', '--snapshot-ids', copy_id)
    [copy] = other.run('describe-snapshots', '--owner-ids', 'self')['Snapshots']
    assert (copy['SnapshotId'], copy['Description'], copy['VolumeSize'], copy['OwnerId']) == \
        (copy_id, 'my copy', 2, friend_account)
    assert 'InvalidSnapshot.NotFound' in cli.fail('describe-snapshots', '--snapshot-ids', copy_id)
    cli.run('modify-snapshot-attribute', '--snapshot-id', snapshot_id, '--attribute', 'createVolumePermission',
            '--operation-type', 'remove', '--user-ids', friend_account)
    # 'self' restores what it has explicit permission for and what it owns: now only its copy.
    restorable = other.run('describe-snapshots', '--restorable-by-user-ids', 'self')['Snapshots']
    assert [s['SnapshotId'] for s in restorable] == [copy_id]
    assert 'InvalidSnapshot.NotFound' in other.fail('describe-snapshots', '--snapshot-ids', snapshot_id)

    other.run('delete-snapshot', '--snapshot-id', copy_id)
    cli.run('delete-volume', '--volume-id', restored['VolumeId'])
    cli.run('delete-snapshot', '--snapshot-id', snapshot_id)
    assert 'InvalidSnapshot.NotFound' in cli.fail('describe-snapshots', '--snapshot-ids', snapshot_id)
    assert 'InvalidSnapshot.NotFound' in cli.fail('create-volume', '--availability-zone', zone, '--snapshot-id',
                                                  snapshot_id)
    cli.run('delete-volume', '--volume-id', volume_id)
    assert cli.run('describe-snapshots', '--owner-ids', 'self')['Snapshots'] == []
    assert other.run('describe-snapshots', '--owner-ids', 'self')['Snapshots'] == []


@pytest.mark.parametrize('signature', ['sigv4', 'sigv2'])
def test_the_snapshot_flow_with_boto2(compute_server, signature):
    owner, friend = (compute_server.new_user(f'boto2-snapshots-{signature}'),
                     compute_server.new_user(f'boto2-snapshots-friend-{signature}'))
    ec2 = connect(compute_server, compute_server.users[owner], signature)
    other = connect(compute_server, compute_server.users[friend], signature)
    friend_account = compute_server.users[friend]['account_id']
    zone = ec2.get_all_zones()[0].name
    volume = ec2.create_volume(1, zone)
    volume.add_tag('Name', 'db-data')
    wait_for(lambda: volume.update() == 'available')
    snapshot = ec2.create_snapshot(volume.id, 'nightly')      # boto 2 tags it with the volume's Name
    assert (snapshot.volume_id, snapshot.volume_size, snapshot.description) == (volume.id, 1, 'nightly')
    wait_for(lambda: snapshot.update() == '100%' and snapshot.status == 'completed')
    (listed,) = ec2.get_all_snapshots(owner='self', filters={'tag:Name': 'db-data'})
    assert (listed.id, listed.status, listed.owner_id) == (snapshot.id, 'completed',
                                                           compute_server.users[owner]['account_id'])

    restored = ec2.create_volume(2, zone, snapshot=snapshot)
    assert (restored.size, restored.snapshot_id) == (2, snapshot.id)
    wait_for(lambda: restored.update() == 'available')
    assert [v.id for v in ec2.get_all_volumes(filters={'snapshot-id': snapshot.id})] == [restored.id]

    assert ec2.modify_snapshot_attribute(snapshot.id, user_ids=[friend_account])
    assert ec2.get_snapshot_attribute(snapshot.id).attrs == {'user_ids': [friend_account]}
    assert [s.id for s in other.get_all_snapshots(restorable_by='self')] == [snapshot.id]
    assert other.get_all_snapshots(owner='self') == []
    with pytest.raises(boto.exception.EC2ResponseError) as refused:
        other.get_snapshot_attribute(snapshot.id)
    assert refused.value.error_code == 'AuthFailure'
    copy_id = other.copy_snapshot(compute_server.region, snapshot.id, 'my copy')
    wait_for(lambda: other.get_all_snapshots([copy_id])[0].status == 'completed')
    (copy,) = other.get_all_snapshots(owner='self')
    assert (copy.id, copy.description, copy.owner_id) == (copy_id, 'my copy', friend_account)
    assert snapshot.unshare(user_ids=[friend_account])
    assert ec2.get_snapshot_attribute(snapshot.id).attrs == {}
    assert [s.id for s in other.get_all_snapshots(restorable_by='self')] == [copy_id]     # its own

    assert other.delete_snapshot(copy_id)
    assert ec2.delete_volume(restored.id) and ec2.delete_volume(volume.id)
    assert snapshot.delete()
    with pytest.raises(boto.exception.EC2ResponseError) as gone:
        ec2.get_all_snapshots([snapshot.id])
    assert gone.value.error_code == 'InvalidSnapshot.NotFound'
    assert ec2.get_all_snapshots(owner='self') == [] and other.get_all_snapshots(owner='self') == []


def test_the_snapshot_flow_with_libcloud(compute_server):
    owner, friend = compute_server.new_user('libcloud-snapshots'), compute_server.new_user('libcloud-snapshots-friend')
    driver, other = libcloud_driver(compute_server, owner), libcloud_driver(compute_server, friend)
    location = driver.list_locations()[0]
    volume = driver.create_volume(1, 'db-data', location=location)
    wait_for(lambda: driver.list_volumes()[0].extra['state'] == 'available')
    snapshot = driver.create_volume_snapshot(volume, name='nightly')    # the Description and a Name tag
    assert (snapshot.extra['volume_id'], snapshot.size, snapshot.name) == (volume.id, 1, 'nightly')
    wait_for(lambda: [s.state for s in driver.list_volume_snapshots(volume)] == [VolumeSnapshotState.AVAILABLE])
    (listed,) = driver.list_volume_snapshots(volume)
    assert (listed.id, listed.name, listed.extra['description'], listed.extra['progress']) == \
        (snapshot.id, 'nightly', 'nightly', '100%')

    restored = driver.create_volume(1, 'restored', location=location, snapshot=snapshot)
    assert restored.extra['snapshot_id'] == snapshot.id
    wait_for(lambda: {v.extra['state'] for v in driver.list_volumes()} == {'available'})
    assert {v.name: v.extra['snapshot_id'] for v in driver.list_volumes()} == {'db-data': None,
                                                                               'restored': snapshot.id}

    # libcloud passes the attribute's parameters through as given: either spelling EC2 takes.
    friend_account = compute_server.users[friend]['account_id']
    assert other.list_snapshots() == []
    assert driver.ex_modify_snapshot_attribute(snapshot, {'CreateVolumePermission.Add.1.UserId': friend_account})
    (shared,) = other.list_snapshots()
    assert (shared.id, shared.extra['state']) == (snapshot.id, 'completed')
    assert other.list_snapshots(owner='self') == []
    theirs = other.create_volume(1, 'from-shared', location=other.list_locations()[0], snapshot=shared)
    wait_for(lambda: other.list_volumes()[0].extra['state'] == 'available')
    assert other.destroy_volume(theirs)
    assert driver.ex_modify_snapshot_attribute(snapshot, {'Attribute': 'createVolumePermission',
                                                          'OperationType': 'remove', 'UserId.1': friend_account})
    assert other.list_snapshots() == []

    assert driver.destroy_volume(restored)
    assert driver.destroy_volume_snapshot(snapshot)
    assert driver.list_snapshots(owner='self') == []
    assert driver.destroy_volume(volume)
    assert driver.list_volumes() == []
