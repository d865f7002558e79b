"""EBS-backed images: machine images whose root (and maybe more devices) are snapshots.

RegisterImage with a root device mapped to a snapshot registers one at once. CreateImage of an
instance whose root is a volume snapshots all its volumes at one instant (`SnapshotService.
create_for_instance`) and registers the image `pending`; it becomes `available` when every snapshot
is completed (`settle_pending`, called by the worker that took them), `failed` if one failed.
Launching one makes each instance's root volume from the root snapshot (an overlay, O(1)), see
`launch_volumes`. A snapshot an image uses cannot be deleted; DeregisterImage leaves its snapshots.
"""
from sqlalchemy import select

from ..errors import InvalidValue
from ..models import Image as ImageRow, ImageBlockDevice, Snapshot as SnapshotRow
from .launch_volumes import BlockDevice, is_root_device
from .snapshot_states import SnapshotState
from .snapshots import restorable_snapshot


def add_block_devices(session, image_id, devices):
    for device in devices:
        session.add(ImageBlockDevice(image_id=image_id, device=device.device, snapshot_id=device.snapshot_id,
                                     size_gib=device.size_gib, volume_type=device.volume_type, iops=device.iops,
                                     throughput=device.throughput,
                                     delete_on_termination=device.delete_on_termination,
                                     no_device=device.no_device))


def check_ebs_registration(session, owner, root_device_name, devices):
    """The mappings of a new EBS-backed image: its root device mapped to a snapshot the owner may use,
    every snapshot usable, every size at least its snapshot's."""
    root = next((device for device in devices if device.device == root_device_name), None)
    if root is None or root.no_device or not root.snapshot_id:
        raise InvalidValue(f'The root device {root_device_name} must be mapped to a snapshot.',
                           code='InvalidBlockDeviceMapping')
    for device in devices:
        if is_root_device(device.device) and device.device != root_device_name:
            raise InvalidValue(f'{device.device} is a root device name, and the root is {root_device_name}.',
                               code='InvalidBlockDeviceMapping')
        if device.snapshot_id:
            snapshot = restorable_snapshot(session, owner, device.snapshot_id, pending_ok=True)
            if device.size_gib is not None and device.size_gib < snapshot.volume_size_gib:
                raise InvalidValue(f'Volume of size {device.size_gib} GiB is smaller than snapshot '
                                   f'{device.snapshot_id}.', code='InvalidBlockDeviceMapping')


def block_devices_of(session, image_ids):
    """{image_id: [BlockDevice, …]} by device name."""
    found = {}
    for start in range(0, len(image_ids), 900):
        for row in session.scalars(select(ImageBlockDevice).where(
                ImageBlockDevice.image_id.in_(list(image_ids)[start:start + 900])).order_by(ImageBlockDevice.device)):
            found.setdefault(row.image_id, []).append(BlockDevice(
                row.device, row.snapshot_id, row.size_gib, row.volume_type, row.iops, row.throughput,
                row.delete_on_termination, row.no_device))
    return found


def settle_pending(session):
    """Pending EBS-backed images whose snapshots are all taken become available (failed if one failed)."""
    pending = session.scalars(select(ImageRow).where(ImageRow.state == 'pending',
                                                     ImageRow.root_device_type == 'ebs').with_for_update()).all()
    for image in pending:
        states = set(session.scalars(select(SnapshotRow.state).join(
            ImageBlockDevice, ImageBlockDevice.snapshot_id == SnapshotRow.snapshot_id).where(
            ImageBlockDevice.image_id == image.image_id)))
        if SnapshotState.ERROR.value in states or SnapshotState.DELETED.value in states:
            image.state, image.state_reason = 'failed', 'A snapshot of the instance\'s volumes failed.'
        elif states == {SnapshotState.COMPLETED.value}:
            image.state = 'available'

