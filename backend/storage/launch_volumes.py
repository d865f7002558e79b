"""Volumes made by RunInstances: the image's block device mappings, changed by the request's, one set
per instance.

An EBS-backed image maps its root device (and maybe more) to snapshots; the request may resize,
retype or drop (NoDevice) what the image maps and add empty volumes or volumes from snapshots. Each
instance gets its own volumes, recorded in the launch's transaction as `creating` and already
attaching to it; their files are made once the launch is committed (an overlay of the snapshot, or an
empty qcow2: O(1) either way), and the worker deploys the instance only when none is `creating` any
more. They are deleted with the instance when DeleteOnTermination says so (true unless asked
otherwise, as on AWS).
"""
import dataclasses

from sqlalchemy import select

from ..errors import InvalidValue
from ..models import Volume as VolumeRow, new_resource_id
from .snapshots import restorable_snapshot
from .volume_states import AttachmentState, VolumeState

ROOT_DEVICES = ('/dev/sda1', '/dev/sda', '/dev/xvda', 'sda1', 'xvda')
MAX_LAUNCH_VOLUMES = 16


@dataclasses.dataclass(frozen=True)
class BlockDevice:
    """One BlockDeviceMapping, of an image or of a launch request."""
    device: str
    snapshot_id: str | None = None
    size_gib: int | None = None
    volume_type: str | None = None
    iops: int | None = None
    throughput: int | None = None
    delete_on_termination: bool | None = None
    no_device: bool = False

    def over(self, below):
        """This mapping laid over the image's for the same device: what it leaves unsaid is kept."""
        return dataclasses.replace(below, **{field.name: getattr(self, field.name)
                                            for field in dataclasses.fields(self)
                                            if getattr(self, field.name) not in (None, False)})


def is_root_device(device):
    return device in ROOT_DEVICES


def merged(image_devices, requested, root_device_name):
    """The mappings a launch gets: the image's, overridden device by device, minus NoDevice ones."""
    by_device = {device.device: device for device in image_devices}
    for device in requested:
        if device.no_device:
            by_device.pop(device.device, None)
        elif device.device in by_device:
            by_device[device.device] = device.over(by_device[device.device])
        else:
            by_device[device.device] = device
    if len(by_device) > MAX_LAUNCH_VOLUMES:
        raise InvalidValue(f'An instance may be launched with at most {MAX_LAUNCH_VOLUMES} volumes here.',
                           code='InvalidBlockDeviceMapping')
    for device in by_device.values():
        if is_root_device(device.device) and device.device != (root_device_name or '/dev/sda1'):
            raise InvalidValue(f'The device {device.device} is not the root device of the image '
                               f'({root_device_name}).', code='InvalidBlockDeviceMapping')
    return sorted(by_device.values(), key=lambda device: (not is_root_device(device.device), device.device))


def add_launch_volumes(session, service, owner, devices, instance_ids, zone, ebs_root):
    """Record each instance's volumes (creating, attaching); [(volume_id, size, snapshot)] to make."""
    if not ebs_root and any(is_root_device(device.device) for device in devices):
        raise InvalidValue('The root device of an instance-store image cannot be an EBS volume.',
                           code='InvalidBlockDeviceMapping')
    templates = [_template(session, service, owner, device, zone) for device in devices]
    service.check_quota(session, owner, sum(template['size_gib'] for template in templates) * len(instance_ids))
    made = []
    for instance_id in instance_ids:
        for template in templates:
            volume_id = new_resource_id('vol')
            session.add(VolumeRow(volume_id=volume_id, owner=owner, instance_id=instance_id, **template))
            made.append((volume_id, template['size_gib'], template['backing_id']))
    return made


def _template(session, service, owner, device, zone):
    """The columns every instance's volume for `device` shares."""
    service.check_device(device.device, root_allowed=True)
    snapshot = restorable_snapshot(session, owner, device.snapshot_id) if device.snapshot_id else None
    size = device.size_gib if device.size_gib is not None else (snapshot.volume_size_gib if snapshot else None)
    if size is None:
        raise InvalidValue(f'The block device mapping for {device.device} needs a snapshot or a volume size.',
                           code='InvalidBlockDeviceMapping')
    if snapshot is not None and size < snapshot.volume_size_gib:
        raise InvalidValue(f'Volume of size {size} GiB is smaller than snapshot {snapshot.snapshot_id}, expect size '
                           f'>= {snapshot.volume_size_gib}', code='InvalidBlockDeviceMapping')
    volume_type, iops, throughput = service.checked_type(device.volume_type, size, device.iops, device.throughput)
    keep = device.delete_on_termination
    return dict(zone=zone, size_gib=size, volume_type=volume_type, iops=iops, throughput=throughput,
                snapshot_id=device.snapshot_id, backing_id=device.snapshot_id, state=VolumeState.CREATING.value,
                auto_enable_io=False, device=device.device, attachment_state=AttachmentState.ATTACHING.value,
                delete_on_termination=True if keep is None else bool(keep), force_detach=False,
                resize_pending=False)


def creating_of(session, instance_ids):
    """[(volume_id, size, snapshot)] of the launch volumes of these instances still to be made."""
    return session.execute(select(VolumeRow.volume_id, VolumeRow.size_gib, VolumeRow.backing_id).where(
        VolumeRow.instance_id.in_(list(instance_ids)), VolumeRow.state == VolumeState.CREATING.value)).all()

