"""Volumes attached to or detached from instances, carried out on the hosts a worker drives.

The API records the wish on the volume ('attaching' / 'detaching'); here the worker plugs the disk
into the instance's domain (hot-plugged while it runs, into its definition while it is stopped) or
unplugs it, then records the attachment as made, or the volume as available again. An instance on
its way between states waits for the next round. A guest that has not let go of a disk yet keeps
its volume 'detaching' until it has.
"""
import logging

from sqlalchemy import select, update

from ..drivers.base import DriverError, VolumeDisk
from ..lifecycle import State
from ..models import Instance as InstanceRow, Volume as VolumeRow
from .volume_states import AttachmentEvent, AttachmentState, VolumeEvent, next_attachment_state, next_volume_state
from .volume_files import GIB, VolumeFileError
from .volumes import effective_iops, finish_modification, guest_target

log = logging.getLogger(__name__)

# Instance states in which the host's domain can take a disk change now.
CHANGEABLE = frozenset({State.RUNNING.value, State.STOPPED.value, State.IMPAIRED.value})
MIB = 1024 ** 2


def volume_disk(files, volume_id, device, volume_type, size_gib, iops, throughput, domain_type='qemu'):
    """The disk a host is handed for an attached volume."""
    return VolumeDisk(volume_id=volume_id, path=str(files.path(volume_id)), target=guest_target(device, domain_type),
                      iops=effective_iops(volume_type, size_gib, iops),
                      bytes_per_second=throughput * MIB if throughput else None)


def volumes_of(session, files, instance_ids, domain_types):
    """{instance_id: (VolumeDisk, …)} of the volumes attached (or attaching) to each instance, in one
    query per 900; `domain_types` is {instance_id: 'qemu', 'kvm' or 'xen'}."""
    result = {}
    for start in range(0, len(instance_ids), 900):
        for row in session.scalars(select(VolumeRow).where(
                VolumeRow.instance_id.in_(instance_ids[start:start + 900]),
                VolumeRow.attachment_state.in_((AttachmentState.ATTACHING.value, AttachmentState.ATTACHED.value)))
                .order_by(VolumeRow.device)):
            result.setdefault(row.instance_id, []).append(volume_disk(
                files, row.volume_id, row.device, row.volume_type, row.size_gib, row.iops, row.throughput,
                domain_types.get(row.instance_id, 'qemu')))
    return result


class DiskAttachments:
    def __init__(self, worker, files):
        self.worker = worker
        self.db = worker.db
        self.files = files

    def dispatch(self):
        """Carry out the due attachment changes and growths on owned hosts; True if any was made."""
        owned = list(self.worker.owned_hosts())
        if not owned:
            return False
        changed = self._grow(owned)
        with self.db.read() as session:
            due = session.execute(
                select(VolumeRow.volume_id, VolumeRow.device, VolumeRow.volume_type, VolumeRow.size_gib,
                       VolumeRow.iops, VolumeRow.throughput, VolumeRow.attachment_state, VolumeRow.force_detach,
                       InstanceRow.instance_id, InstanceRow.state, InstanceRow.host_id)
                .join(InstanceRow, InstanceRow.instance_id == VolumeRow.instance_id)
                .where(VolumeRow.attachment_state.in_((AttachmentState.ATTACHING.value,
                                                       AttachmentState.DETACHING.value)),
                       InstanceRow.host_id.in_(owned))).all()
        for row in due:
            if row.state not in CHANGEABLE or not self.worker.claim_instance(row.instance_id):
                continue
            try:
                changed |= self._change(row)
            except DriverError as error:
                log.warning('cannot %s %s on %s: %s', 'attach' if row.attachment_state == 'attaching' else 'detach',
                            row.volume_id, row.instance_id, error)
            finally:
                self.worker.release_instance(row.instance_id)
        return changed

    def _grow(self, owned):
        """Attached volumes ModifyVolume grew: the running guest's disk through the host, a stopped
        instance's file directly."""
        with self.db.read() as session:
            due = session.execute(
                select(VolumeRow.volume_id, VolumeRow.device, VolumeRow.volume_type, VolumeRow.size_gib,
                       VolumeRow.iops, VolumeRow.throughput, InstanceRow.instance_id, InstanceRow.state,
                       InstanceRow.host_id)
                .join(InstanceRow, InstanceRow.instance_id == VolumeRow.instance_id)
                .where(VolumeRow.resize_pending.is_(True),
                       VolumeRow.attachment_state == AttachmentState.ATTACHED.value,
                       InstanceRow.host_id.in_(owned))).all()
        grown = False
        for row in due:
            if row.state not in CHANGEABLE or not self.worker.claim_instance(row.instance_id):
                continue
            try:
                driver = self.worker.driver_of(row.host_id)
                disk = volume_disk(self.files, row.volume_id, row.device, row.volume_type, row.size_gib, row.iops,
                                   row.throughput, self.worker.domain_type_of(row.host_id))
                if driver is None:
                    continue
                if not driver.resize_disk(row.instance_id, disk, row.size_gib * GIB):
                    self.files.grow(row.volume_id, row.size_gib)
                with self.db.write() as session:
                    grown = session.execute(update(VolumeRow).where(VolumeRow.volume_id == row.volume_id,
                                                                    VolumeRow.size_gib == row.size_gib)
                                            .values(resize_pending=False)).rowcount
                    if grown:
                        finish_modification(session, row.volume_id)
                grown = True
            except (DriverError, VolumeFileError) as error:
                log.warning('cannot grow %s on %s: %s', row.volume_id, row.instance_id, error)
            finally:
                self.worker.release_instance(row.instance_id)
        return grown

    def _change(self, row):
        driver = self.worker.driver_of(row.host_id)
        if driver is None:
            return False
        domain_type = self.worker.domain_type_of(row.host_id)
        disk = volume_disk(self.files, row.volume_id, row.device, row.volume_type, row.size_gib, row.iops,
                           row.throughput, domain_type)
        if row.attachment_state == AttachmentState.ATTACHING.value:
            driver.attach_disk(row.instance_id, disk, domain_type)
        elif not driver.detach_disk(row.instance_id, disk, force=row.force_detach):
            return False
        with self.db.write() as session:
            volume = session.get(VolumeRow, row.volume_id)
            if volume is None or volume.attachment_state != row.attachment_state or volume.instance_id != row.instance_id:
                return False      # the wish changed meanwhile: the next round sees the new one
            if row.attachment_state == AttachmentState.ATTACHING.value:
                volume.attachment_state = next_attachment_state(volume.attachment_state, AttachmentEvent.PLUGGED,
                                                                row.volume_id).value
            else:
                volume.state = next_volume_state(volume.state, VolumeEvent.DETACHED, row.volume_id).value
                volume.instance_id = volume.device = volume.attachment_state = volume.attached_at = None
                volume.delete_on_termination = volume.force_detach = False
        return True
