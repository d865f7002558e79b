"""EBS snapshots through boto3 against a live server on simulated hosts: taken of available and
attached volumes (with boto3's `snapshot_completed` waiter), restored into volumes that keep the data,
copied, shared by createVolumePermission, described with filters and pages, and deleted, with the
files underneath kept exactly as long as something is built on them."""
import json
import subprocess

import pytest

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud

ZONE = 'reservoir-1a'
FAST = {'Delay': 1, 'MaxAttempts': 60}
MIB = 1024 ** 2


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('snapshots-home'), ('alice', 'bob', 'carol'))
    yield live
    live.stop()


def available_volume(ec2, size=1, **extra):
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=size, **extra)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume_id], WaiterConfig=FAST)
    return volume_id


def completed_snapshot(ec2, volume_id, **extra):
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, **extra)['SnapshotId']
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[snapshot_id], WaiterConfig=FAST)
    return snapshot_id


def write_pattern(path, offset_mib, byte):
    """Write 1 MiB of `byte` into a qcow2 file at `offset_mib`, as a guest would through its disk."""
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', f'write -P {byte} {offset_mib}M 1M', str(path)],
                   check=True, capture_output=True)


def read_pattern(path, offset_mib, byte):
    """True when the disk in `path` (its whole chain) holds 1 MiB of `byte` at `offset_mib`."""
    result = subprocess.run(['qemu-io', '-r', '-U', '-f', 'qcow2', '-c', f'read -P {byte} {offset_mib}M 1M',
                             str(path)], capture_output=True, text=True)
    return result.returncode == 0 and 'Pattern verification failed' not in result.stdout


def backing_of(path):
    shown = subprocess.run(['qemu-img', 'info', '-U', '--output=json', str(path)], capture_output=True, text=True,
                           check=True).stdout
    return json.loads(shown).get('backing-filename')


def test_a_snapshot_keeps_the_volume_as_it_was_and_a_volume_made_from_it_starts_there(server):
    ec2 = server.client('alice')
    volume_id = available_volume(ec2, size=2)
    volume_file = server.home / 'volumes' / f'{volume_id}.qcow2'
    write_pattern(volume_file, 0, 0x11)
    made = ec2.create_snapshot(VolumeId=volume_id, Description='before the upgrade',
                               TagSpecifications=[{'ResourceType': 'snapshot',
                                                   'Tags': [{'Key': 'app', 'Value': 'db'}]}])
    assert (made['VolumeId'], made['VolumeSize'], made['Description']) == (volume_id, 2, 'before the upgrade')
    assert made['State'] in ('pending', 'completed') and made['Tags'] == [{'Key': 'app', 'Value': 'db'}]
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[made['SnapshotId']], WaiterConfig=FAST)
    shown = ec2.describe_snapshots(SnapshotIds=[made['SnapshotId']])['Snapshots'][0]
    assert (shown['State'], shown['Progress'], shown['OwnerId']) == ('completed', '100%', server.users['alice']['account_id'])

    write_pattern(volume_file, 0, 0x22)              # the volume moves on; the snapshot does not
    snapshot_file = server.home / 'snapshots' / f"{made['SnapshotId']}.qcow2"
    assert read_pattern(snapshot_file, 0, 0x11) and read_pattern(volume_file, 0, 0x22)

    restored = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=made['SnapshotId'])
    assert (restored['Size'], restored['SnapshotId']) == (2, made['SnapshotId'])
    ec2.get_waiter('volume_available').wait(VolumeIds=[restored['VolumeId']], WaiterConfig=FAST)
    restored_file = server.home / 'volumes' / f"{restored['VolumeId']}.qcow2"
    assert read_pattern(restored_file, 0, 0x11)
    assert backing_of(restored_file).endswith(f"{made['SnapshotId']}.qcow2"), 'a restore copied instead of overlaying'
    bigger = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=made['SnapshotId'], Size=5)
    assert bigger['Size'] == 5
    assert ec2.describe_volumes(Filters=[{'Name': 'snapshot-id', 'Values': [made['SnapshotId']]}])['Volumes']


def test_snapshots_of_one_volume_hold_only_what_changed_and_outlive_each_other(server):
    ec2 = server.client('alice')
    volume_id = available_volume(ec2)
    volume_file = server.home / 'volumes' / f'{volume_id}.qcow2'
    write_pattern(volume_file, 0, 0x31)
    first = completed_snapshot(ec2, volume_id)
    write_pattern(volume_file, 4, 0x32)
    second = completed_snapshot(ec2, volume_id)
    snapshots = server.home / 'snapshots'
    assert backing_of(snapshots / f'{second}.qcow2').endswith(f'{first}.qcow2'), 'the second is not incremental'
    assert read_pattern(snapshots / f'{second}.qcow2', 0, 0x31) and read_pattern(snapshots / f'{second}.qcow2', 4, 0x32)

    ec2.delete_snapshot(SnapshotId=first)          # the second is built on its file: the file stays
    assert (snapshots / f'{first}.qcow2').exists()
    assert first not in [s['SnapshotId'] for s in ec2.describe_snapshots(OwnerIds=['self'])['Snapshots']]
    assert error_code(lambda: ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=first)) == 'InvalidSnapshot.NotFound'
    assert read_pattern(snapshots / f'{second}.qcow2', 0, 0x31)

    ec2.delete_volume(VolumeId=volume_id)
    ec2.delete_snapshot(SnapshotId=second)          # nothing is built on either now: both files go
    assert not (snapshots / f'{second}.qcow2').exists() and not (snapshots / f'{first}.qcow2').exists()


def test_snapshots_of_an_attached_volume_and_of_an_instance(server):
    ec2 = server.client('alice')
    (instance,) = ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    Placement={'AvailabilityZone': ZONE})['Instances']
    instance_id = instance['InstanceId']
    ec2.get_waiter('instance_running').wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    volumes = [available_volume(ec2, TagSpecifications=[
        {'ResourceType': 'volume', 'Tags': [{'Key': 'disk', 'Value': str(n)}]}]) for n in range(2)]
    for volume_id, device in zip(volumes, ('/dev/sdf', '/dev/sdg')):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
    ec2.get_waiter('volume_in_use').wait(VolumeIds=volumes, Filters=[{'Name': 'attachment.status',
                                                                       'Values': ['attached']}], WaiterConfig=FAST)
    single = completed_snapshot(ec2, volumes[0])
    taken = ec2.create_snapshots(InstanceSpecification={'InstanceId': instance_id}, Description='nightly',
                                 CopyTagsFromSource='volume')['Snapshots']
    assert sorted(s['VolumeId'] for s in taken) == sorted(volumes)
    ids = [s['SnapshotId'] for s in taken]
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=ids, WaiterConfig=FAST)
    described = ec2.describe_snapshots(SnapshotIds=ids)['Snapshots']
    assert {s['Description'] for s in described} == {'nightly'}
    assert sorted(t['Value'] for s in described for t in s['Tags'] if t['Key'] == 'disk') == ['0', '1']
    assert single not in ids
    excluded = ec2.create_snapshots(InstanceSpecification={'InstanceId': instance_id,
                                                           'ExcludeDataVolumeIds': [volumes[1]]})['Snapshots']
    assert [s['VolumeId'] for s in excluded] == [volumes[0]]
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_copy_share_and_the_boundaries_of_accounts(server):
    alice, bob, carol = server.client('alice'), server.client('bob'), server.client('carol')
    volume_id = available_volume(alice)
    write_pattern(server.home / 'volumes' / f'{volume_id}.qcow2', 0, 0x41)
    snapshot_id = completed_snapshot(alice, volume_id)
    bob_account = server.users['bob']['account_id']

    # Not shared: bob sees nothing and can do nothing with it.
    assert error_code(lambda: bob.describe_snapshots(SnapshotIds=[snapshot_id])) == 'InvalidSnapshot.NotFound'
    assert error_code(lambda: bob.create_volume(AvailabilityZone=ZONE, SnapshotId=snapshot_id)) == \
        'InvalidSnapshot.NotFound'
    assert error_code(lambda: bob.copy_snapshot(SourceRegion='reservoir-1', SourceSnapshotId=snapshot_id)) == \
        'InvalidSnapshot.NotFound'
    assert error_code(lambda: bob.delete_snapshot(SnapshotId=snapshot_id)) == 'InvalidSnapshot.NotFound'
    assert error_code(lambda: bob.create_snapshot(VolumeId=volume_id)) == 'InvalidVolume.NotFound'

    alice.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute='createVolumePermission',
                                    OperationType='add', UserIds=[bob_account])
    permissions = alice.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute='createVolumePermission')
    assert permissions['CreateVolumePermissions'] == [{'UserId': bob_account}]
    assert [s['SnapshotId'] for s in bob.describe_snapshots(RestorableByUserIds=['self'])['Snapshots']] == [snapshot_id]
    assert not bob.describe_snapshots(OwnerIds=['self'])['Snapshots']
    assert error_code(lambda: bob.delete_snapshot(SnapshotId=snapshot_id)) == 'AuthFailure'
    assert error_code(lambda: bob.describe_snapshot_attribute(SnapshotId=snapshot_id,
                                                              Attribute='createVolumePermission')) == 'AuthFailure'
    copy_id = bob.copy_snapshot(SourceRegion='reservoir-1', SourceSnapshotId=snapshot_id,
                                Description='mine now')['SnapshotId']
    bob.get_waiter('snapshot_completed').wait(SnapshotIds=[copy_id], WaiterConfig=FAST)
    copy = bob.describe_snapshots(SnapshotIds=[copy_id])['Snapshots'][0]
    assert (copy['OwnerId'], copy['VolumeId'], copy['Description']) == (bob_account, 'vol-ffffffff', 'mine now')
    bobs_volume = bob.create_volume(AvailabilityZone=ZONE, SnapshotId=copy_id)['VolumeId']
    bob.get_waiter('volume_available').wait(VolumeIds=[bobs_volume], WaiterConfig=FAST)

    # Unshared and deleted by alice: bob's copy and volume keep the data.
    alice.modify_snapshot_attribute(SnapshotId=snapshot_id, CreateVolumePermission={
        'Remove': [{'UserId': bob_account}]})
    assert error_code(lambda: bob.describe_snapshots(SnapshotIds=[snapshot_id])) == 'InvalidSnapshot.NotFound'
    alice.delete_snapshot(SnapshotId=snapshot_id)
    assert read_pattern(server.home / 'volumes' / f'{bobs_volume}.qcow2', 0, 0x41)

    # Public: everyone may restore it, nobody else may change it.
    bob.modify_snapshot_attribute(SnapshotId=copy_id, CreateVolumePermission={'Add': [{'Group': 'all'}]})
    assert copy_id in [s['SnapshotId'] for s in carol.describe_snapshots()['Snapshots']]
    assert copy_id in [s['SnapshotId'] for s in carol.describe_snapshots(RestorableByUserIds=['all'])['Snapshots']]
    assert copy_id not in [s['SnapshotId'] for s in carol.describe_snapshots(RestorableByUserIds=['self'])['Snapshots']]
    assert error_code(lambda: carol.modify_snapshot_attribute(
        SnapshotId=copy_id, CreateVolumePermission={'Add': [{'Group': 'all'}]})) == 'AuthFailure'
    bob.reset_snapshot_attribute(SnapshotId=copy_id, Attribute='createVolumePermission')
    assert copy_id not in [s['SnapshotId'] for s in carol.describe_snapshots()['Snapshots']]


def test_what_aws_refuses_is_refused(server):
    ec2 = server.client('alice')
    volume_id = available_volume(ec2, size=3)
    snapshot_id = completed_snapshot(ec2, volume_id)
    cases = {
        'InvalidSnapshotID.Malformed': lambda: ec2.describe_snapshots(SnapshotIds=['snap-nope']),
        'InvalidSnapshot.NotFound': lambda: ec2.delete_snapshot(SnapshotId='snap-0123456789abcdef0'),
        'InvalidVolumeID.Malformed': lambda: ec2.create_snapshot(VolumeId='volume-1'),
        'InvalidParameterValue': lambda: ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=snapshot_id, Size=2),
        'InvalidUserID.Malformed': lambda: ec2.modify_snapshot_attribute(
            SnapshotId=snapshot_id, CreateVolumePermission={'Add': [{'UserId': 'bob'}]}),
        'UnsupportedOperation': lambda: ec2.copy_snapshot(SourceRegion='reservoir-1', SourceSnapshotId=snapshot_id,
                                                          Encrypted=True),
        'MissingParameter': lambda: ec2.modify_snapshot_attribute(SnapshotId=snapshot_id),
    }
    for code, call in cases.items():
        assert error_code(call) == code, code
    assert error_code(lambda: ec2.copy_snapshot(SourceRegion='elsewhere-1', SourceSnapshotId=snapshot_id)) == \
        'InvalidParameterValue'
    assert error_code(lambda: ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute='size')) == \
        'InvalidParameterValue'
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert error_code(lambda: ec2.delete_snapshot(SnapshotId=snapshot_id)) == 'InvalidSnapshot.NotFound'


def test_a_volume_deleted_right_after_create_snapshot_leaves_a_complete_snapshot(server):
    ec2 = server.client('alice')
    volume_id = available_volume(ec2)
    write_pattern(server.home / 'volumes' / f'{volume_id}.qcow2', 0, 0x51)
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)['SnapshotId']
    ec2.delete_volume(VolumeId=volume_id)
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[snapshot_id], WaiterConfig=FAST)
    assert read_pattern(server.home / 'snapshots' / f'{snapshot_id}.qcow2', 0, 0x51)


def test_pages_and_filters_of_snapshots(server):
    ec2 = server.client('carol')
    volume_id = available_volume(ec2)
    made = sorted(completed_snapshot(ec2, volume_id, Description=f'n{n}') for n in range(7))
    seen, token = [], None
    while True:
        page = ec2.describe_snapshots(OwnerIds=['self'], MaxResults=5, **({'NextToken': token} if token else {}))
        seen += [s['SnapshotId'] for s in page['Snapshots']]
        token = page.get('NextToken')
        if not token:
            break
    assert seen == made
    found = ec2.describe_snapshots(OwnerIds=['self'], Filters=[{'Name': 'description', 'Values': ['n3', 'n5']},
                                                               {'Name': 'status', 'Values': ['completed']}])
    assert len(found['Snapshots']) == 2
    assert len(ec2.describe_snapshots(Filters=[{'Name': 'volume-id', 'Values': [volume_id]}])['Snapshots']) == 7
