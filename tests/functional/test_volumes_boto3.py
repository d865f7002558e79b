"""EBS volumes through boto3 against a live server on simulated hosts: create, describe with filters
and pages, attach and detach (with boto3's waiters), grow, attributes, delete, and what AWS refuses."""
import json
import subprocess

import pytest

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud
from tests.support.waiting import wait_for

ZONE = 'reservoir-1a'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('volumes-home'), ('alice', 'bob'))
    yield live
    live.stop()


def launch(ec2, image_id, **extra):
    (instance,) = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    Placement={'AvailabilityZone': ZONE}, **extra)['Instances']
    ec2.get_waiter('instance_running').wait(InstanceIds=[instance['InstanceId']],
                                            WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
    return instance['InstanceId']


def qcow2_size(path):
    """The virtual size of a qcow2 file, as qemu-img reads it."""
    shown = subprocess.run(['qemu-img', 'info', '-U', '--output=json', str(path)], capture_output=True, text=True,
                           check=True).stdout
    return json.loads(shown)['virtual-size']


def volume(ec2, volume_id):
    return ec2.describe_volumes(VolumeIds=[volume_id])['Volumes'][0]


def test_a_volume_is_made_described_grown_and_deleted(server):
    ec2 = server.client('alice')
    made = ec2.create_volume(AvailabilityZone=ZONE, Size=2, VolumeType='gp3', Iops=4000,
                             TagSpecifications=[{'ResourceType': 'volume', 'Tags': [{'Key': 'app', 'Value': 'db'}]}])
    volume_id = made['VolumeId']
    assert made['State'] == 'creating' and made['Size'] == 2 and made['Tags'] == [{'Key': 'app', 'Value': 'db'}]
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume_id], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    shown = volume(ec2, volume_id)
    assert (shown['VolumeType'], shown['Iops'], shown['Throughput'], shown['Encrypted']) == ('gp3', 4000, 125, False)
    assert (server.home / 'volumes' / f'{volume_id}.qcow2').exists()
    gp2 = ec2.create_volume(AvailabilityZone=ZONE, Size=50)
    assert (gp2['VolumeType'], gp2['Iops']) == ('gp2', 150)          # 3 IOPS per GiB, at least 100
    found = ec2.describe_volumes(Filters=[{'Name': 'tag:app', 'Values': ['db']}, {'Name': 'status',
                                                                               'Values': ['available']}])['Volumes']
    assert [v['VolumeId'] for v in found] == [volume_id]
    assert [v['VolumeId'] for v in ec2.describe_volumes(Filters=[{'Name': 'size', 'Values': ['50']}])['Volumes']] == \
        [gp2['VolumeId']]

    modification = ec2.modify_volume(VolumeId=volume_id, Size=3)['VolumeModification']
    assert (modification['OriginalSize'], modification['TargetSize']) == (2, 3)
    assert volume(ec2, volume_id)['Size'] == 3
    (listed,) = ec2.describe_volumes_modifications(VolumeIds=[volume_id])['VolumesModifications']
    assert (listed['ModificationState'], listed['OriginalSize'], listed['TargetSize']) == ('completed', 2, 3)
    assert 'EndTime' in listed
    assert error_code(ec2.describe_volumes_modifications, VolumeIds=[gp2['VolumeId']]) == \
        'InvalidVolumeModification.NotFound'
    assert error_code(ec2.modify_volume, VolumeId=volume_id, Size=1) == 'InvalidParameterValue'
    ec2.modify_volume_attribute(VolumeId=volume_id, AutoEnableIO={'Value': True})
    assert ec2.describe_volume_attribute(VolumeId=volume_id, Attribute='autoEnableIO')['AutoEnableIO'] == \
        {'Value': True}
    (status,) = ec2.describe_volume_status(VolumeIds=[volume_id])['VolumeStatuses']
    assert status['VolumeStatus']['Status'] == 'ok'

    for made_id in (volume_id, gp2['VolumeId']):
        ec2.delete_volume(VolumeId=made_id)
    ec2.get_waiter('volume_deleted').wait(VolumeIds=[volume_id], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    assert not (server.home / 'volumes' / f'{volume_id}.qcow2').exists()
    assert error_code(ec2.describe_volumes, VolumeIds=[volume_id]) == 'InvalidVolume.NotFound'


def test_what_aws_refuses_is_refused(server):
    ec2 = server.client('alice')
    cases = [
        (dict(Size=1), 'MissingParameter'),
        (dict(AvailabilityZone='elsewhere-1z', Size=1), 'InvalidParameterValue'),
        (dict(AvailabilityZone=ZONE), 'MissingParameter'),
        (dict(AvailabilityZone=ZONE, Size=0), 'InvalidParameterValue'),
        (dict(AvailabilityZone=ZONE, Size=20000), 'InvalidParameterValue'),
        (dict(AvailabilityZone=ZONE, Size=10, VolumeType='io1'), 'MissingParameter'),
        (dict(AvailabilityZone=ZONE, Size=10, VolumeType='io1', Iops=1000), 'InvalidParameterValue'),
        (dict(AvailabilityZone=ZONE, Size=10, VolumeType='gp2', Iops=300), 'InvalidParameterCombination'),
        (dict(AvailabilityZone=ZONE, Size=10, VolumeType='floppy'), 'InvalidParameterValue'),
        (dict(AvailabilityZone=ZONE, Size=10, Encrypted=True), 'UnsupportedOperation'),
        (dict(AvailabilityZone=ZONE, SnapshotId='snap-0123456789abcdef0'), 'InvalidSnapshot.NotFound'),
        (dict(AvailabilityZone=ZONE, SnapshotId='nonsense'), 'InvalidSnapshotID.Malformed'),
    ]
    for arguments, code in cases:
        assert error_code(ec2.create_volume, **arguments) == code, arguments
    assert error_code(ec2.delete_volume, VolumeId='vol-0123456789abcdef0') == 'InvalidVolume.NotFound'
    assert error_code(ec2.delete_volume, VolumeId='volume-1') == 'InvalidVolumeID.Malformed'
    assert ec2.describe_volumes(Filters=[{'Name': 'size', 'Values': ['20000']}])['Volumes'] == []


def test_attach_detach_and_termination_as_on_aws(server):
    ec2 = server.client('alice')
    instance_id = launch(ec2, server.image_id)
    data = ec2.create_volume(AvailabilityZone=ZONE, Size=1)['VolumeId']
    scratch = ec2.create_volume(AvailabilityZone=ZONE, Size=1)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[data, scratch], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    attached = ec2.attach_volume(VolumeId=data, InstanceId=instance_id, Device='/dev/sdf')
    assert (attached['State'], attached['Device']) == ('attaching', '/dev/sdf')
    ec2.get_waiter('volume_in_use').wait(VolumeIds=[data], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    wait_for(lambda: volume(ec2, data)['Attachments'][0]['State'] == 'attached')
    assert error_code(ec2.attach_volume, VolumeId=data, InstanceId=instance_id, Device='/dev/sdg') == 'VolumeInUse'
    assert error_code(ec2.attach_volume, VolumeId=scratch, InstanceId=instance_id, Device='/dev/sdf') == \
        'InvalidParameterValue', 'a device in use'
    assert error_code(ec2.attach_volume, VolumeId=scratch, InstanceId=instance_id, Device='/dev/hda') == \
        'InvalidParameterValue'
    assert error_code(ec2.delete_volume, VolumeId=data) == 'VolumeInUse'
    ec2.attach_volume(VolumeId=scratch, InstanceId=instance_id, Device='/dev/xvdg')
    wait_for(lambda: volume(ec2, scratch)['Attachments'][0]['State'] == 'attached')
    # The instance shows them; DeleteOnTermination is set on the instance, as on AWS.
    shown = ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]
    assert sorted((m['DeviceName'], m['Ebs']['VolumeId']) for m in shown['BlockDeviceMappings']) == \
        [('/dev/sdf', data), ('/dev/xvdg', scratch)]
    assert [v['VolumeId'] for v in ec2.describe_volumes(Filters=[
        {'Name': 'attachment.instance-id', 'Values': [instance_id]}])['Volumes']] == sorted([data, scratch])
    mappings = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='blockDeviceMapping')
    assert sorted(m['Ebs']['VolumeId'] for m in mappings['BlockDeviceMappings']) == sorted([data, scratch])

    # Grown while attached: the host grows the disk, then the modification is complete.
    modification = ec2.modify_volume(VolumeId=data, Size=3)['VolumeModification']
    assert (modification['OriginalSize'], modification['TargetSize']) == (1, 3)
    wait_for(lambda: qcow2_size(server.home / 'volumes' / f'{data}.qcow2') == 3 * 1024 ** 3)
    wait_for(lambda: ec2.describe_volumes_modifications(Filters=[
        {'Name': 'modification-state', 'Values': ['completed']},
        {'Name': 'volume-id', 'Values': [data]}])['VolumesModifications'])
    detached = ec2.detach_volume(VolumeId=data)
    assert detached['State'] == 'detaching'
    ec2.get_waiter('volume_available').wait(VolumeIds=[data], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    assert volume(ec2, data)['Attachments'] == []
    assert error_code(ec2.detach_volume, VolumeId=data) == 'IncorrectState'

    ec2.modify_instance_attribute(InstanceId=instance_id, BlockDeviceMappings=[
        {'DeviceName': '/dev/xvdg', 'Ebs': {'DeleteOnTermination': True}}])
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter('instance_terminated').wait(InstanceIds=[instance_id], WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
    ec2.get_waiter('volume_deleted').wait(VolumeIds=[scratch], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    assert volume(ec2, data)['State'] == 'available'
    ec2.delete_volume(VolumeId=data)


def test_volumes_stay_in_their_zone_and_with_their_account(server):
    alice, bob = server.client('alice'), server.client('bob')
    instance_id = launch(alice, server.image_id)
    zones = [z['ZoneName'] for z in alice.describe_availability_zones()['AvailabilityZones']]
    elsewhere = [zone for zone in zones if zone != ZONE]
    if elsewhere:
        far = alice.create_volume(AvailabilityZone=elsewhere[0], Size=1)['VolumeId']
        alice.get_waiter('volume_available').wait(VolumeIds=[far], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
        assert error_code(alice.attach_volume, VolumeId=far, InstanceId=instance_id, Device='/dev/sdf') == \
            'InvalidVolume.ZoneMismatch'
        alice.delete_volume(VolumeId=far)
    theirs = bob.create_volume(AvailabilityZone=ZONE, Size=1)['VolumeId']
    assert error_code(alice.attach_volume, VolumeId=theirs, InstanceId=instance_id, Device='/dev/sdf') == \
        'InvalidVolume.NotFound'
    assert error_code(alice.delete_volume, VolumeId=theirs) == 'InvalidVolume.NotFound'
    assert theirs not in [v['VolumeId'] for v in alice.describe_volumes()['Volumes']]
    mine = alice.create_volume(AvailabilityZone=ZONE, Size=1)['VolumeId']
    bobs_instance = launch(bob, server.image_id)
    assert error_code(bob.attach_volume, VolumeId=mine, InstanceId=bobs_instance, Device='/dev/sdf') == \
        'InvalidVolume.NotFound'
    assert error_code(alice.attach_volume, VolumeId=mine, InstanceId=bobs_instance, Device='/dev/sdf') == \
        'InvalidInstanceID.NotFound'
    for client, ids in ((alice, [instance_id]), (bob, [bobs_instance])):
        client.terminate_instances(InstanceIds=ids)
    alice.delete_volume(VolumeId=mine)
    bob.delete_volume(VolumeId=theirs)


def test_pages_of_volumes(server):
    ec2 = server.client('bob')
    made = sorted(ec2.create_volume(AvailabilityZone=ZONE, Size=1)['VolumeId'] for _ in range(7))
    pages, token = [], None
    while True:
        page = ec2.describe_volumes(MaxResults=5, **({'NextToken': token} if token else {}))
        pages.append([v['VolumeId'] for v in page['Volumes']])
        token = page.get('NextToken')
        if not token:
            break
    assert [len(page) for page in pages] == [5, 2] and sorted(sum(pages, [])) == made
    for volume_id in made:
        ec2.delete_volume(VolumeId=volume_id)
