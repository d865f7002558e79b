"""EBS volumes on real VMs: a volume hot-plugged into a running guest, written, detached, attached to
another guest that reads it, kept across stop and start, and left available when its instance ends;
snapshots that restore what was written; an EBS-backed image that boots and keeps a file.

Two guests boot once for the module; the test logs into them over SSH from their VPC's router and
finds the volume by its serial number (the volume id without its dash, as on AWS's NVMe volumes).
"""
import ipaddress
import json
import time

import pytest

from .conftest import (CONTEXTUALIZED, security_group, tcp_in, wait_for_console, wait_for_states)

# One worker runs the whole module, so its guests boot once.
pytestmark = [pytest.mark.vm, pytest.mark.xdist_group('vm-volumes')]

SSH_STARTED = 'reservoir-context: ssh server started'
STATE_TIMEOUT = 60


def find_disk(serial):
    """Shell: the /dev name of the disk whose serial is `serial`, in $disk."""
    return (f'disk=; for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "{serial}" ] && '
            f'disk=/dev/${{d##*/}}; done; ')


class Guests:
    def __init__(self, ec2, vm_cloud, key, instances):
        self.ec2, self.vm_cloud, self.key = ec2, vm_cloud, key
        self.ids = {name: i['InstanceId'] for name, i in instances.items()}
        self.address = {name: i['PrivateIpAddress'] for name, i in instances.items()}
        self.vpc_id = instances['writer']['VpcId']

    def shell(self, name, command):
        result = self.vm_cloud.guest_shell(self.vpc_id, self.key, self.address[name], command)
        assert result.returncode == 0, f'{command!r} in {name} failed ({result.returncode}): {result.stderr}'
        return result.stdout


@pytest.fixture(scope='module')
def guests(ec2, vm_cloud, tmp_path_factory):
    subnet = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']}])['Subnets'][0]
    gateway = str(ipaddress.IPv4Network(subnet['CidrBlock'])[1])
    control = security_group(ec2, 'volumes-ssh', tcp_in(22, f'{gateway}/32'))
    pair = ec2.create_key_pair(KeyName='volume-tests', KeyType='ed25519')
    key = tmp_path_factory.mktemp('volumes') / 'volume-tests.pem'
    key.write_text(pair['KeyMaterial'])
    key.chmod(0o600)
    instances = {}
    try:
        for name in ('writer', 'reader'):
            (instances[name],) = ec2.run_instances(
                ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro', KeyName='volume-tests',
                SubnetId=subnet['SubnetId'], SecurityGroupIds=[control])['Instances']
        for instance in instances.values():
            wait_for_console(ec2, instance['InstanceId'], CONTEXTUALIZED, SSH_STARTED)
        made = Guests(ec2, vm_cloud, key, instances)
        made.zone = instances['writer']['Placement']['AvailabilityZone']
        made.subnet_id, made.control = subnet['SubnetId'], control
        yield made
    finally:
        ids = [instance['InstanceId'] for instance in instances.values()]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_for_states(ec2, ids, {'terminated'})
        ec2.delete_security_group(GroupId=control)
        ec2.delete_key_pair(KeyName='volume-tests')


def wait_attachment(ec2, volume_id, state):
    """Until the volume's attachment is `state` ('attached'), or the volume is available ('available')."""
    deadline = time.monotonic() + STATE_TIMEOUT
    while time.monotonic() < deadline:
        (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])['Volumes']
        now = volume['Attachments'][0]['State'] if volume['Attachments'] else volume['State']
        if now == state:
            return
        time.sleep(0.5)
    raise AssertionError(f'{volume_id} did not become {state}')


def test_a_volume_moves_between_running_guests_with_its_data(guests):
    ec2 = guests.ec2
    volume_id = ec2.create_volume(AvailabilityZone=guests.zone, Size=1)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume_id], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    serial = volume_id.replace('-', '')[:20]

    ec2.attach_volume(VolumeId=volume_id, InstanceId=guests.ids['writer'], Device='/dev/sdf')
    wait_attachment(ec2, volume_id, 'attached')
    out = guests.shell('writer', find_disk(serial) + 'echo "disk=$disk"; cat /sys/block/${disk#/dev/}/size')
    assert 'disk=/dev/vd' in out, f'the guest sees no disk with serial {serial}: {out}'
    assert '2097152' in out, 'the disk is not 1 GiB (2,097,152 sectors)'
    guests.shell('writer', find_disk(serial) + 'busybox mke2fs -q "$disk" && mkdir -p /mnt/v && '
                           'mount -t ext2 "$disk" /mnt/v && echo "written by the writer" > /mnt/v/note && '
                           'umount /mnt/v && sync')

    ec2.detach_volume(VolumeId=volume_id)
    wait_attachment(ec2, volume_id, 'available')
    assert 'disk=\n' in guests.shell('writer', find_disk(serial) + 'echo "disk=$disk"'), 'the disk stayed'

    ec2.attach_volume(VolumeId=volume_id, InstanceId=guests.ids['reader'], Device='/dev/xvdg')
    wait_attachment(ec2, volume_id, 'attached')
    out = guests.shell('reader', find_disk(serial) + 'mkdir -p /mnt/v && mount -t ext2 "$disk" /mnt/v && '
                                                     'cat /mnt/v/note; umount /mnt/v')
    assert 'written by the writer' in out

    # Grown while the guest runs: the guest sees 2 GiB (4,194,304 sectors) without a restart.
    modification = ec2.modify_volume(VolumeId=volume_id, Size=2)['VolumeModification']
    assert modification['TargetSize'] == 2
    deadline = time.monotonic() + STATE_TIMEOUT
    size = ''
    while time.monotonic() < deadline:
        size = guests.shell('reader', find_disk(serial) + 'cat /sys/block/${disk#/dev/}/size').strip()
        if size == '4194304':
            break
        time.sleep(1)
    assert size == '4194304', f'the guest still sees {size} sectors'

    # Stopped and started, the reader keeps the volume.
    ec2.stop_instances(InstanceIds=[guests.ids['reader']])
    wait_for_states(ec2, [guests.ids['reader']], {'stopped'})
    (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])['Volumes']
    assert volume['State'] == 'in-use' and volume['Attachments'][0]['InstanceId'] == guests.ids['reader']
    ec2.start_instances(InstanceIds=[guests.ids['reader']])
    wait_for_states(ec2, [guests.ids['reader']], {'running'})
    wait_for_console(ec2, guests.ids['reader'], SSH_STARTED)     # the console starts again with each boot
    out = guests.shell('reader', find_disk(serial) + 'mkdir -p /mnt/v && mount -t ext2 "$disk" /mnt/v && '
                                                     'cat /mnt/v/note; umount /mnt/v')
    assert 'written by the writer' in out, 'the volume did not come back with the started instance'
    ec2.detach_volume(VolumeId=volume_id)
    wait_attachment(ec2, volume_id, 'available')
    ec2.delete_volume(VolumeId=volume_id)


def test_terminating_an_instance_leaves_its_data_volume_available(guests, ec2, vm_cloud):
    (instance,) = ec2.run_instances(ImageId=vm_cloud.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    Placement={'AvailabilityZone': guests.zone})['Instances']
    instance_id = instance['InstanceId']
    wait_for_states(ec2, [instance_id], {'running'})
    kept = ec2.create_volume(AvailabilityZone=guests.zone, Size=1)['VolumeId']
    doomed = ec2.create_volume(AvailabilityZone=guests.zone, Size=1)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[kept, doomed], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    ec2.attach_volume(VolumeId=kept, InstanceId=instance_id, Device='/dev/sdf')
    ec2.attach_volume(VolumeId=doomed, InstanceId=instance_id, Device='/dev/sdg')
    for volume_id in (kept, doomed):
        wait_attachment(ec2, volume_id, 'attached')
    ec2.modify_instance_attribute(InstanceId=instance_id, BlockDeviceMappings=[
        {'DeviceName': '/dev/sdg', 'Ebs': {'DeleteOnTermination': True}}])
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_for_states(ec2, [instance_id], {'terminated'})
    ec2.get_waiter('volume_deleted').wait(VolumeIds=[doomed], WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
    (volume,) = ec2.describe_volumes(VolumeIds=[kept])['Volumes']
    assert volume['State'] == 'available' and volume['Attachments'] == []
    ec2.delete_volume(VolumeId=kept)


def read_note(guests, name, serial):
    return guests.shell(name, find_disk(serial) + 'mkdir -p /mnt/s && mount -t ext2 "$disk" /mnt/s && '
                                                  'cat /mnt/s/note; umount /mnt/s')


def restore_to_reader(guests, snapshot_id, device):
    """A volume made from the snapshot, attached to the reader; its serial."""
    ec2 = guests.ec2
    volume_id = ec2.create_volume(AvailabilityZone=guests.zone, SnapshotId=snapshot_id)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume_id], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    ec2.attach_volume(VolumeId=volume_id, InstanceId=guests.ids['reader'], Device=device)
    wait_attachment(ec2, volume_id, 'attached')
    return volume_id


def test_snapshots_of_a_volume_in_use_restore_what_the_guest_had_written(guests):
    """Snapshotted while its guest runs (paused for the copy), then while it is stopped (its file
    frozen in place): each restores into a volume that holds what was written before it, and the
    guest started again still has its volume."""
    ec2 = guests.ec2
    volume_id = ec2.create_volume(AvailabilityZone=guests.zone, Size=1)['VolumeId']
    ec2.get_waiter('volume_available').wait(VolumeIds=[volume_id], WaiterConfig={'Delay': 1, 'MaxAttempts': 30})
    serial = volume_id.replace('-', '')[:20]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=guests.ids['writer'], Device='/dev/sdh')
    wait_attachment(ec2, volume_id, 'attached')
    guests.shell('writer', find_disk(serial) + 'busybox mke2fs -q "$disk" && mkdir -p /mnt/s && '
                           'mount -t ext2 "$disk" /mnt/s && echo first > /mnt/s/note && umount /mnt/s && sync')

    running = ec2.create_snapshot(VolumeId=volume_id, Description='while running')['SnapshotId']
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[running], WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
    guests.shell('writer', find_disk(serial) + 'mount -t ext2 "$disk" /mnt/s && echo second > /mnt/s/note && '
                           'umount /mnt/s && sync')
    first_copy = restore_to_reader(guests, running, '/dev/sdi')
    assert read_note(guests, 'reader', first_copy.replace('-', '')[:20]).strip() == 'first'

    ec2.stop_instances(InstanceIds=[guests.ids['writer']])
    wait_for_states(ec2, [guests.ids['writer']], {'stopped'})
    stopped = ec2.create_snapshot(VolumeId=volume_id, Description='while stopped')['SnapshotId']
    ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[stopped], WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
    ec2.start_instances(InstanceIds=[guests.ids['writer']])
    wait_for_states(ec2, [guests.ids['writer']], {'running'})
    wait_for_console(ec2, guests.ids['writer'], SSH_STARTED)
    assert read_note(guests, 'writer', serial).strip() == 'second', 'the frozen volume did not come back'
    second_copy = restore_to_reader(guests, stopped, '/dev/sdj')
    assert read_note(guests, 'reader', second_copy.replace('-', '')[:20]).strip() == 'second'

    for copy in (first_copy, second_copy):
        ec2.detach_volume(VolumeId=copy)
    ec2.detach_volume(VolumeId=volume_id)
    for each in (first_copy, second_copy, volume_id):
        wait_attachment(ec2, each, 'available')
        ec2.delete_volume(VolumeId=each)
    for snapshot_id in (running, stopped):
        ec2.delete_snapshot(SnapshotId=snapshot_id)


def test_an_ebs_backed_image_made_by_create_image_launches_with_what_was_written(guests, ec2, vm_cloud):
    """The stock image's EBS twin boots on a root volume; CreateImage of it while it runs (its
    volumes snapshotted at one instant) makes an image whose instances find the file written."""
    twin = json.loads(vm_cloud.admin('image', 'ebs-twin', vm_cloud.image_id, '--name', 'stock-ebs', '--json'))
    launched = []

    def boot(image_id):
        (instance,) = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                        KeyName='volume-tests', SubnetId=guests.subnet_id,
                                        SecurityGroupIds=[guests.control])['Instances']
        launched.append(instance['InstanceId'])
        wait_for_console(ec2, instance['InstanceId'], CONTEXTUALIZED, SSH_STARTED)
        return instance

    def shell(instance, command):
        result = vm_cloud.guest_shell(guests.vpc_id, guests.key, instance['PrivateIpAddress'], command)
        assert result.returncode == 0, f'{command!r} failed: {result.stderr}'
        return result.stdout

    try:
        first = boot(twin['image_id'])
        shown = ec2.describe_instances(InstanceIds=[first['InstanceId']])['Reservations'][0]['Instances'][0]
        assert shown['RootDeviceType'] == 'ebs'
        root_volume = {m['DeviceName']: m['Ebs']['VolumeId'] for m in shown['BlockDeviceMappings']}['/dev/sda1']
        shell(first, 'echo "kept on the root volume" > /root/note && sync')
        image_id = ec2.create_image(InstanceId=first['InstanceId'], Name='written-ebs')['ImageId']
        ec2.get_waiter('image_available').wait(ImageIds=[image_id], WaiterConfig={'Delay': 2, 'MaxAttempts': 60})
        ec2.terminate_instances(InstanceIds=[first['InstanceId']])
        ec2.get_waiter('volume_deleted').wait(VolumeIds=[root_volume], WaiterConfig={'Delay': 1, 'MaxAttempts': 90})

        second = boot(image_id)
        assert 'kept on the root volume' in shell(second, 'cat /root/note')
    finally:
        if launched:
            ec2.terminate_instances(InstanceIds=launched)
            wait_for_states(ec2, launched, {'terminated'})
