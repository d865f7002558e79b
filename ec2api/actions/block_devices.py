"""BlockDeviceMapping.N, as RunInstances and RegisterImage take it, and as images show it."""
from backend.storage.launch_volumes import BlockDevice

from ..errors import EC2Error


def requested_block_devices(mappings):
    """(BlockDevice, …) from BlockDeviceMapping.N. Instance-store (ephemeral) mappings are left out, as
    AWS does for instance types without instance storage (none has any here)."""
    devices = []
    for number, mapping in enumerate(mappings or (), 1):
        device = mapping.get('DeviceName')
        if not device:
            raise EC2Error('MissingParameter', f'The request must contain the parameter BlockDeviceMapping.{number}.'
                                               'DeviceName')
        if 'NoDevice' in mapping:
            devices.append(BlockDevice(device, no_device=True))
            continue
        ebs = mapping.get('Ebs')
        if ebs is None:
            continue                                   # VirtualName ephemeralN
        if ebs.get('Encrypted') or ebs.get('KmsKeyId'):
            raise EC2Error('UnsupportedOperation', 'Encrypted volumes are not offered by this cloud.')
        devices.append(BlockDevice(device, ebs.get('SnapshotId'), ebs.get('VolumeSize'), ebs.get('VolumeType'),
                                   ebs.get('Iops'), ebs.get('Throughput'), ebs.get('DeleteOnTermination')))
    if len({device.device for device in devices}) != len(devices):
        raise EC2Error('InvalidBlockDeviceMapping', 'A device is named twice in the block device mappings.')
    return tuple(devices)


def image_block_device_shape(device):
    """One of an image's mappings as DescribeImages shows it."""
    if device.no_device:
        return {'DeviceName': device.device, 'NoDevice': ''}
    ebs = {'DeleteOnTermination': True if device.delete_on_termination is None else device.delete_on_termination,
           'VolumeType': device.volume_type or 'gp2', 'Encrypted': False}
    if device.snapshot_id:
        ebs['SnapshotId'] = device.snapshot_id
    if device.size_gib is not None:
        ebs['VolumeSize'] = device.size_gib
    if device.iops is not None:
        ebs['Iops'] = device.iops
    if device.throughput is not None:
        ebs['Throughput'] = device.throughput
    return {'DeviceName': device.device, 'Ebs': ebs}
