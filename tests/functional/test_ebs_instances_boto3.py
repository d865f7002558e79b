"""EBS at launch, through boto3 against a live server on simulated hosts: volumes from RunInstances'
BlockDeviceMapping, EBS-backed images registered on a snapshot or made by CreateImage, their root
volumes made from the snapshot without copying, and what AWS refuses."""
import json
import subprocess

import pytest

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud

ZONE = 'reservoir-1a'
FAST = {'Delay': 1, 'MaxAttempts': 60}


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('ebs-home'), ('alice', 'bob'))
    yield live
    live.stop()


def qemu_io(path, command, read_only=False):
    flags = ['-r', '-U'] if read_only else []
    return subprocess.run(['qemu-io', *flags, '-f', 'qcow2', '-c', command, str(path)], capture_output=True, text=True)


def holds(path, byte):
    result = qemu_io(path, f'read -P {byte} 0 64k', read_only=True)
    return result.returncode == 0 and 'Pattern verification failed' not in result.stdout


def backing_of(path):
    shown = subprocess.run(['qemu-img', 'info', '-U', '--output=json', str(path)], capture_output=True, text=True,
                           check=True).stdout
    return json.loads(shown).get('backing-filename')


def launch(ec2, image_id, **extra):
    (instance,) = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    Placement={'AvailabilityZone': ZONE}, **extra)['Instances']
    ec2.get_waiter('instance_running').wait(InstanceIds=[instance['InstanceId']], WaiterConfig=FAST)
    return ec2.describe_instances(InstanceIds=[instance['InstanceId']])['Reservations'][0]['Instances'][0]


def mapped(instance):
    return {m['DeviceName']: m['Ebs'] for m in instance['BlockDeviceMappings']}


def snapshot_with(server, ec2, byte, size=1):
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=size)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume_id], WaiterConfig=FAST)
    assert qemu_io(server.home / 'volumes' / f'{volume_id}.qcow2', f'write -P {byte} 0 64k').returncode == 0
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)['SnapshotId']
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[snapshot_id], WaiterConfig=FAST)
    return snapshot_id


def test_block_device_mappings_give_an_instance_store_instance_its_volumes(server):
    ec2 = server.client('alice')
    snapshot_id = snapshot_with(server, ec2, 0x21)
    instance = launch(ec2, server.image_id, BlockDeviceMappings=[
        {'DeviceName': '/dev/sdf', 'Ebs': {'VolumeSize': 2, 'VolumeType': 'gp3'}},
        {'DeviceName': '/dev/sdg', 'Ebs': {'SnapshotId': snapshot_id, 'DeleteOnTermination': False}},
        {'DeviceName': '/dev/sdh', 'VirtualName': 'ephemeral0'}],
        TagSpecifications=[{'ResourceType': 'volume', 'Tags': [{'Key': 'made-by', 'Value': 'launch'}]}])
    assert instance['RootDeviceType'] == 'instance-store'
    devices = mapped(instance)
    assert sorted(devices) == ['/dev/sdf', '/dev/sdg'], 'the ephemeral mapping should be left out'
    assert (devices['/dev/sdf']['DeleteOnTermination'], devices['/dev/sdg']['DeleteOnTermination']) == (True, False)
    volumes = {v['VolumeId']: v for v in ec2.describe_volumes(
        VolumeIds=[d['VolumeId'] for d in devices.values()])['Volumes']}
    empty, restored = volumes[devices['/dev/sdf']['VolumeId']], volumes[devices['/dev/sdg']['VolumeId']]
    assert (empty['Size'], empty['VolumeType'], empty['State']) == (2, 'gp3', 'in-use')
    assert restored['SnapshotId'] == snapshot_id
    assert holds(server.home / 'volumes' / f"{restored['VolumeId']}.qcow2", 0x21)
    assert {t['Value'] for v in volumes.values() for t in v['Tags']} == {'launch'}

    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])
    ec2.get_waiter('volume_deleted').wait(VolumeIds=[empty['VolumeId']], WaiterConfig=FAST)
    kept = ec2.describe_volumes(VolumeIds=[restored['VolumeId']])['Volumes'][0]
    assert kept['State'] == 'available' and kept['Attachments'] == []


def test_an_ebs_backed_image_launches_on_a_root_volume_made_from_its_snapshot(server):
    ec2 = server.client('alice')
    root_snapshot = snapshot_with(server, ec2, 0x31, size=2)
    image_id = ec2.register_image(Name='ebs-root', RootDeviceName='/dev/sda1', BlockDeviceMappings=[
        {'DeviceName': '/dev/sda1', 'Ebs': {'SnapshotId': root_snapshot}},
        {'DeviceName': '/dev/sdf', 'Ebs': {'VolumeSize': 1}}])['ImageId']
    image = ec2.describe_images(ImageIds=[image_id])['Images'][0]
    assert (image['RootDeviceType'], image['State']) == ('ebs', 'available')
    assert {m['DeviceName']: m['Ebs'].get('SnapshotId') for m in image['BlockDeviceMappings']} == \
        {'/dev/sda1': root_snapshot, '/dev/sdf': None}
    assert [i['ImageId'] for i in ec2.describe_images(Filters=[
        {'Name': 'block-device-mapping.snapshot-id', 'Values': [root_snapshot]}])['Images']] == [image_id]

    instance = launch(ec2, image_id, BlockDeviceMappings=[{'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 4}},
                                                          {'DeviceName': '/dev/sdf', 'NoDevice': ''}])
    assert (instance['RootDeviceType'], instance['RootDeviceName']) == ('ebs', '/dev/sda1')
    for kind, wanted in (('ebs', True), ('e*', True), ('instance-store', False)):
        found = [i['InstanceId'] for r in ec2.describe_instances(Filters=[
            {'Name': 'root-device-type', 'Values': [kind]}])['Reservations'] for i in r['Instances']]
        assert (instance['InstanceId'] in found) is wanted, kind
    devices = mapped(instance)
    assert list(devices) == ['/dev/sda1'], 'NoDevice did not drop the image\'s /dev/sdf'
    root = ec2.describe_volumes(VolumeIds=[devices['/dev/sda1']['VolumeId']])['Volumes'][0]
    assert (root['Size'], root['SnapshotId'], root['Attachments'][0]['DeleteOnTermination']) == \
        (4, root_snapshot, True)
    root_file = server.home / 'volumes' / f"{root['VolumeId']}.qcow2"
    assert backing_of(root_file).endswith(f'{root_snapshot}.qcow2'), 'the root volume was copied, not overlaid'
    assert holds(root_file, 0x31)

    assert error_code(lambda: ec2.delete_snapshot(SnapshotId=root_snapshot)) == 'InvalidSnapshot.InUse'
    ec2.stop_instances(InstanceIds=[instance['InstanceId']])
    ec2.get_waiter('instance_stopped').wait(InstanceIds=[instance['InstanceId']], WaiterConfig=FAST)
    assert ec2.describe_volumes(VolumeIds=[root['VolumeId']])['Volumes'][0]['State'] == 'in-use'

    # CreateImage of the stopped EBS-backed instance: its root volume as it is now, as a new snapshot.
    assert qemu_io(root_file, 'write -P 0x32 0 64k').returncode == 0
    second_image = ec2.create_image(InstanceId=instance['InstanceId'], Name='ebs-second')['ImageId']
    ec2.get_waiter('image_available').wait(ImageIds=[second_image], WaiterConfig=FAST)
    shown = ec2.describe_images(ImageIds=[second_image])['Images'][0]
    assert shown['RootDeviceType'] == 'ebs'
    new_snapshot = {m['DeviceName']: m['Ebs'] for m in shown['BlockDeviceMappings']}['/dev/sda1']['SnapshotId']
    assert new_snapshot != root_snapshot
    relaunched = launch(ec2, second_image)
    relaunched_root = mapped(relaunched)['/dev/sda1']['VolumeId']
    assert holds(server.home / 'volumes' / f'{relaunched_root}.qcow2', 0x32)

    ec2.terminate_instances(InstanceIds=[instance['InstanceId'], relaunched['InstanceId']])
    ec2.get_waiter('volume_deleted').wait(VolumeIds=[root['VolumeId'], relaunched_root], WaiterConfig=FAST)
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=root_snapshot)      # the image is gone: its snapshot may go
    assert error_code(lambda: ec2.delete_snapshot(SnapshotId=new_snapshot)) == 'InvalidSnapshot.InUse'


def test_what_aws_refuses_at_launch_and_registration(server):
    ec2, bob = server.client('alice'), server.client('bob')
    snapshot_id = snapshot_with(server, ec2, 0x41, size=3)
    cases = {
        'InvalidBlockDeviceMapping': lambda: ec2.run_instances(
            ImageId=server.image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[
                {'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 2}}]),
        'InvalidParameterValue': lambda: ec2.run_instances(
            ImageId=server.image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[
                {'DeviceName': '/dev/sdq1', 'Ebs': {'VolumeSize': 2}}]),
        'UnsupportedOperation': lambda: ec2.run_instances(
            ImageId=server.image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[
                {'DeviceName': '/dev/sdf', 'Ebs': {'VolumeSize': 2, 'Encrypted': True}}]),
    }
    for code, call in cases.items():
        assert error_code(call) == code, code
    assert error_code(lambda: bob.register_image(Name='not-mine', RootDeviceName='/dev/sda1', BlockDeviceMappings=[
        {'DeviceName': '/dev/sda1', 'Ebs': {'SnapshotId': snapshot_id}}])) == 'InvalidSnapshot.NotFound'
    image_id = ec2.register_image(Name='ebs-small', RootDeviceName='/dev/sda1', BlockDeviceMappings=[
        {'DeviceName': '/dev/sda1', 'Ebs': {'SnapshotId': snapshot_id}}])['ImageId']
    assert error_code(lambda: ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, BlockDeviceMappings=[
        {'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 1}}])) == 'InvalidBlockDeviceMapping'
    assert not [i for r in ec2.describe_instances(Filters=[{'Name': 'image-id', 'Values': [image_id]}])['Reservations']
                for i in r['Instances']], 'a refused launch left an instance'


def test_an_administrator_makes_an_ebs_twin_of_a_public_image_anyone_can_launch(server):
    twin = json.loads(server.admin('image', 'ebs-twin', server.image_id, '--name', 'tiny-ebs', '--owner', 'alice',
                                   '--json'))
    bob = server.client('bob')
    image = bob.describe_images(ImageIds=[twin['image_id']])['Images'][0]
    assert (image['RootDeviceType'], image['Public']) == ('ebs', True)
    instance = launch(bob, twin['image_id'])
    root = mapped(instance)['/dev/sda1']['VolumeId']
    assert backing_of(server.home / 'volumes' / f'{root}.qcow2').endswith(f"{twin['snapshot_id']}.qcow2")
    assert twin['snapshot_id'] in [s['SnapshotId'] for s in bob.describe_snapshots(
        RestorableByUserIds=['all'])['Snapshots']]
    assert twin['snapshot_id'] not in [s['SnapshotId'] for s in bob.describe_snapshots(
        RestorableByUserIds=['self'])['Snapshots']], "'self' is what one owns or was given, not what is public"
    bob.terminate_instances(InstanceIds=[instance['InstanceId']])
