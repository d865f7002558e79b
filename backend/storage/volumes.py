"""EBS volumes: made, described, grown, attached to an instance of their zone, detached and deleted.

The API asks; the states change only through `volume_states`' tables. A volume's file is made while
CreateVolume runs (a sparse qcow2 takes milliseconds), and removed after DeleteVolume has marked it
`deleting`, so a crash at any point is finished by `recover` at the next start. Attachments are
carried out by the worker that drives the instance's host (`disk_attachments`); an instance that
ends takes the volumes marked DeleteOnTermination with it and leaves the others available.

Volume types are EC2's. Every type is a qcow2 file on the state directory's file system; the IOPS
and throughput of io1, io2 and gp3 (and gp2's 3 IOPS per GiB) become libvirt I/O limits of the
attached disk, so a volume performs no better than its type says. Encryption and Multi-Attach are
refused.
"""
import dataclasses
import datetime
import logging
import re

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..drivers.base import Feature
from ..errors import Conflict, InvalidValue, NotFound
from ..hosts import require_feature
from ..lifecycle import State
from ..models import (Instance as InstanceRow, Snapshot as SnapshotRow, Tag, Volume as VolumeRow,
                      VolumeModification as ModificationRow, is_resource_id, new_resource_id, utcnow)
from ..quotas import effective, lock_account, used_bytes
from .launch_volumes import ROOT_DEVICES, add_launch_volumes, creating_of, merged
from .snapshot_states import SnapshotState
from .snapshots import freeze_into, restorable_snapshot
from .volume_files import GIB, VolumeFileError
from .volume_states import (AttachmentEvent, AttachmentState, VolumeEvent, VolumeState, next_attachment_state,
                            next_volume_state)

log = logging.getLogger(__name__)

# EC2's types: (smallest GiB, largest GiB, IOPS range or None when not settable, default IOPS).
VOLUME_TYPES = {
    'standard': (1, 1024, None),
    'gp2': (1, 16384, None),
    'gp3': (1, 16384, (3000, 16000)),
    'io1': (4, 16384, (100, 64000)),
    'io2': (4, 65536, (100, 256000)),
    'st1': (125, 16384, None),
    'sc1': (125, 16384, None),
}
DEFAULT_TYPE = 'gp2'
GP3_THROUGHPUT = (125, 1000)            # MiB/s
IOPS_PER_GIB = {'io1': 50, 'io2': 1000}
# Device names a volume may take on Linux instances: /dev/sd[b-z], /dev/xvd[b-z] (and xvdb…).
DEVICE = re.compile(r'(?:/dev/)?(?:sd|xvd)([b-z])')
# Instance states in which a volume may be attached or detached (the host acts when it can).
ATTACHABLE = (State.RUNNING.value, State.STOPPED.value)
# A volume `creating` for this long lost the process making its file (that takes milliseconds).
STALE_CREATING_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Attachment:
    volume_id: str
    instance_id: str
    device: str
    state: str
    attached_at: datetime.datetime
    delete_on_termination: bool


@dataclasses.dataclass(frozen=True)
class Volume:
    volume_id: str
    owner: str
    zone: str
    size_gib: int
    volume_type: str
    iops: int | None
    throughput: int | None
    snapshot_id: str | None
    state: str
    created_at: datetime.datetime
    auto_enable_io: bool
    attachments: tuple
    modifying: bool = False          # an attached volume's growth not yet carried out on its host


@dataclasses.dataclass(frozen=True)
class CreateRequest:
    zone: str | None
    size_gib: int | None
    volume_type: str | None = None
    iops: int | None = None
    throughput: int | None = None
    snapshot_id: str | None = None
    encrypted: bool = False
    multi_attach: bool = False
    client_token: str | None = None


def check_volume_id(volume_id):
    if not is_resource_id(volume_id, 'vol'):
        raise InvalidValue(f"Invalid id: '{volume_id}' (expecting 'vol-...')", code='InvalidVolumeID.Malformed')


def guest_target(device, domain_type='qemu'):
    """The disk's target on the hypervisor for an EC2 device name: /dev/sdf → vdf (xvdf for Xen), the
    root device (/dev/sda1, /dev/xvda) → vda."""
    letter = 'a' if device in ROOT_DEVICES else DEVICE.fullmatch(device).group(1)
    return f'xvd{letter}' if domain_type == 'xen' else f'vd{letter}'


def effective_iops(volume_type, size_gib, iops):
    """The IOPS a volume gets: as set for io1/io2/gp3, 3 per GiB (100 to 16,000) for gp2."""
    if volume_type == 'gp2':
        return max(100, min(16000, 3 * size_gib))
    return iops


class VolumeService:
    def __init__(self, db, files, zones, quotas, wake_workers=None):
        self.db = db
        self.files = files
        self.zones = tuple(zones)
        self.quotas = quotas
        self.wake_workers = wake_workers or (lambda: None)

    # -- the volume ---------------------------------------------------------------------------------

    def create(self, owner, request):
        self._check_request(request)
        with self.db.write() as session:
            snapshot = restorable_snapshot(session, owner, request.snapshot_id) if request.snapshot_id else None
            request = self._sized(request, snapshot)
            volume_type, iops, throughput = self._checked(request)
            if request.client_token:
                earlier = session.scalar(select(VolumeRow).where(VolumeRow.owner == owner,
                                                                 VolumeRow.client_token == request.client_token))
                if earlier is not None:
                    if (earlier.zone, earlier.size_gib, earlier.volume_type) != (request.zone, request.size_gib,
                                                                                 volume_type):
                        raise Conflict('IdempotentParameterMismatch', 'The client token was used for another volume')
                    return _volume(earlier, ())
            lock_account(session, owner)
            self.check_quota(session, owner, request.size_gib)
            row = VolumeRow(volume_id=new_resource_id('vol'), owner=owner, zone=request.zone,
                            size_gib=request.size_gib, volume_type=volume_type, iops=iops, throughput=throughput,
                            state=VolumeState.CREATING.value, client_token=request.client_token,
                            auto_enable_io=False, delete_on_termination=False, force_detach=False,
                            resize_pending=False, snapshot_id=request.snapshot_id, backing_id=request.snapshot_id)
            session.add(row)
            session.flush()
            made = _volume(row, ())
        self._make_file(made.volume_id, made.size_gib, request.snapshot_id)
        return made

    @staticmethod
    def _sized(request, snapshot):
        """The request with the snapshot's size when it gives none; never smaller than the snapshot."""
        if snapshot is None:
            return request
        if request.size_gib is None:
            return dataclasses.replace(request, size_gib=snapshot.volume_size_gib)
        if request.size_gib < snapshot.volume_size_gib:
            raise InvalidValue(f"Volume of size {request.size_gib} GiB is smaller than snapshot "
                               f"'{snapshot.snapshot_id}', expect size >= {snapshot.volume_size_gib}")
        return request

    def _check_request(self, request):
        if request.encrypted:
            raise InvalidValue('Encrypted volumes are not offered by this cloud.', code='UnsupportedOperation')
        if request.multi_attach:
            raise InvalidValue('Multi-Attach is not offered by this cloud.', code='UnsupportedOperation')
        if not request.zone:
            raise InvalidValue('The request must contain the parameter AvailabilityZone', code='MissingParameter')
        if request.zone not in self.zones:
            raise InvalidValue(f'Invalid availability zone: [{request.zone}]')
        if request.snapshot_id is None and request.size_gib is None:
            raise InvalidValue('The request must contain the parameter size or snapshotId', code='MissingParameter')

    def _checked(self, request):
        if request.size_gib is None:
            raise InvalidValue('The request must contain the parameter size or snapshotId', code='MissingParameter')
        return self.checked_type(request.volume_type, request.size_gib, request.iops, request.throughput)

    def checked_type(self, volume_type, size_gib, iops, throughput):
        """(type, IOPS, throughput) of a volume of `size_gib`, defaults filled in, or the error."""
        volume_type = volume_type or DEFAULT_TYPE
        if volume_type not in VOLUME_TYPES:
            raise InvalidValue(f"Value ({volume_type}) for parameter volumeType is invalid. Valid types: "
                               f"{', '.join(VOLUME_TYPES)}.")
        smallest, largest, _ = VOLUME_TYPES[volume_type]
        if not isinstance(size_gib, int) or not smallest <= size_gib <= largest:
            raise InvalidValue(f'Volume of {size_gib}GiB is not allowed: minimum is {smallest}GiB, maximum is '
                               f'{largest}GiB for {volume_type}.')
        return volume_type, *self._performance(volume_type, size_gib, iops, throughput)

    @staticmethod
    def check_device(device, root_allowed=False):
        if root_allowed and device in ROOT_DEVICES:
            return
        if not device or not DEVICE.fullmatch(device):
            if device in ROOT_DEVICES:
                raise InvalidValue(f'Attachment point {device} is already in use')
            raise InvalidValue(f"Value ({device}) for parameter device is invalid. {device} is not a valid EBS "
                               'device name.')

    # -- volumes made by RunInstances ----------------------------------------------------------------

    def add_launch_volumes(self, session, owner, image_devices, requested, root_device_name, ebs_root,
                           instance_ids, zone):
        """Record, in the launch's transaction, the volumes of each instance (see launch_volumes)."""
        devices = merged(image_devices, requested, root_device_name)
        if devices:
            add_launch_volumes(session, self, owner, devices, instance_ids, zone, ebs_root)

    def make_launch_files(self, instance_ids):
        """The files of the launch volumes of these instances, once their launch is committed."""
        with self.db.read() as session:
            due = creating_of(session, instance_ids)
        for volume_id, size_gib, backing_id in due:
            self._make_file(volume_id, size_gib, backing_id)

    @staticmethod
    def _performance(volume_type, size_gib, iops, throughput):
        iops_range = VOLUME_TYPES[volume_type][2]
        if iops is not None and iops_range is None:
            raise InvalidValue(f'The parameter iops is not supported for {volume_type} volumes.',
                               code='InvalidParameterCombination')
        if volume_type in ('io1', 'io2') and iops is None:
            raise InvalidValue(f'The parameter iops must be specified for {volume_type} volumes.',
                               code='MissingParameter')
        if volume_type == 'gp3':
            iops = 3000 if iops is None else iops
            throughput = GP3_THROUGHPUT[0] if throughput is None else throughput
            if not GP3_THROUGHPUT[0] <= throughput <= GP3_THROUGHPUT[1]:
                raise InvalidValue(f'Throughput of {throughput} MiB/s is outside 125 to 1000 for gp3.')
        elif throughput is not None:
            raise InvalidValue(f'The parameter throughput is not supported for {volume_type} volumes.',
                               code='InvalidParameterCombination')
        if iops is not None:
            low, high = iops_range
            if not low <= iops <= high:
                raise InvalidValue(f'Volume iops of {iops} is outside {low} to {high} for {volume_type}.')
            ratio = IOPS_PER_GIB.get(volume_type)
            if ratio and iops > ratio * size_gib:
                raise InvalidValue(f'Iops to volume size ratio of {iops / size_gib:.1f} is too high; maximum is '
                                   f'{ratio}.')
        return iops, throughput

    def check_quota(self, session, owner, more_gib):
        limit = effective(session, self.quotas, owner).storage
        held = used_bytes(session, owner)
        if held + more_gib * GIB > limit:
            raise Conflict('VolumeLimitExceeded', f'Maximum storage of {limit // GIB} GiB would be exceeded: '
                                                  f'{held // GIB} GiB held, {more_gib} GiB asked.')

    def _make_file(self, volume_id, size_gib, backing_snapshot=None):
        try:
            self.files.create(volume_id, size_gib, backing_snapshot)
            event = VolumeEvent.CREATED
        except VolumeFileError as error:
            log.warning('cannot make the file of %s: %s', volume_id, error)
            event = VolumeEvent.CREATE_FAILED
        self._record_creation(volume_id, event)

    def _record_creation(self, volume_id, event):
        with self.db.write() as session:
            row = session.get(VolumeRow, volume_id)
            if row is not None and row.state == VolumeState.CREATING.value:
                if event is VolumeEvent.CREATED and row.attachment_state is not None:
                    event = VolumeEvent.CREATED_ATTACHED
                row.state = next_volume_state(row.state, event, volume_id).value

    def delete(self, owner, volume_id):
        with self.db.write() as session:
            row = self._owned(session, owner, volume_id)
            if row.state == VolumeState.AVAILABLE.value:
                # A snapshot asked for just before survives the volume, as on AWS: taken now.
                for snapshot in session.scalars(select(SnapshotRow).where(
                        SnapshotRow.volume_id == volume_id, SnapshotRow.state == SnapshotState.PENDING.value)):
                    freeze_into(session, self.files, row, snapshot)
            row.state = next_volume_state(row.state, VolumeEvent.DELETE, volume_id).value
        self._finish_deleting(volume_id)

    def _finish_deleting(self, volume_id):
        self.files.remove(volume_id)
        with self.db.write() as session:
            session.execute(Tag.__table__.delete().where(Tag.resource_id == volume_id))
            session.execute(ModificationRow.__table__.delete().where(ModificationRow.volume_id == volume_id))
            session.execute(VolumeRow.__table__.delete().where(VolumeRow.volume_id == volume_id,
                                                               VolumeRow.state == VolumeState.DELETING.value))

    def describe(self, owner, ids=None, after=None, limit=None):
        """The owner's volumes, by id; `after`/`limit` cut one page in the database."""
        for volume_id in ids or ():
            check_volume_id(volume_id)
        with self.db.read() as session:
            query = select(VolumeRow).where(VolumeRow.owner == owner).order_by(VolumeRow.volume_id)
            if ids:
                query = query.where(VolumeRow.volume_id.in_(list(ids)))
            if after:
                query = query.where(VolumeRow.volume_id > after)
            if limit:
                query = query.limit(limit)
            rows = session.scalars(query).all()
            found = [_volume(row, _attachments_of(row)) for row in rows]
        missing = sorted(set(ids or ()) - {volume.volume_id for volume in found})
        if missing:
            raise NotFound('InvalidVolume.NotFound', f"The volume '{missing[0]}' does not exist.")
        return found

    def attached_to(self, instance_ids):
        """{instance_id: (Attachment, …)} of the volumes attached to these instances, by device."""
        result = {}
        with self.db.read() as session:
            for start in range(0, len(instance_ids), 900):
                for row in session.scalars(select(VolumeRow).where(
                        VolumeRow.instance_id.in_(list(instance_ids)[start:start + 900])).order_by(VolumeRow.device)):
                    result.setdefault(row.instance_id, []).extend(_attachments_of(row))
        return result

    def modify(self, owner, volume_id, size_gib=None, volume_type=None, iops=None, throughput=None):
        """ModifyVolume: grow, change type or performance. Returns (volume before, volume after)."""
        with self.db.write() as session:
            row = self._owned(session, owner, volume_id)
            if row.state not in (VolumeState.AVAILABLE.value, VolumeState.IN_USE.value):
                raise Conflict('IncorrectState', f"The volume '{volume_id}' is '{row.state}'")
            before = _volume(row, ())
            new_type = volume_type or row.volume_type
            if new_type not in VOLUME_TYPES:
                raise InvalidValue(f"Value ({new_type}) for parameter volumeType is invalid.")
            new_size = row.size_gib if size_gib is None else size_gib
            if new_size < row.size_gib:
                raise InvalidValue(f'New size {new_size}GiB cannot be smaller than the existing size '
                                   f'{row.size_gib}GiB.')
            smallest, largest, _ = VOLUME_TYPES[new_type]
            if not smallest <= new_size <= largest:
                raise InvalidValue(f'Volume of {new_size}GiB is not allowed for {new_type}: {smallest} to '
                                   f'{largest}GiB.')
            keep_iops = iops if iops is not None else (row.iops if new_type == row.volume_type else None)
            keep_throughput = throughput if throughput is not None else (
                row.throughput if new_type == row.volume_type else None)
            new_iops, new_throughput = self._performance(new_type, new_size, keep_iops, keep_throughput)
            if new_size > row.size_gib:
                if row.resize_pending:
                    raise Conflict('IncorrectModificationState', f"Volume '{volume_id}' is being modified")
                self.check_quota(session, owner, new_size - row.size_gib)
                if row.attachment_state is not None:
                    row.resize_pending = True     # the host of its instance grows the disk (disk_attachments)
                else:
                    try:
                        self.files.grow(volume_id, new_size)
                    except VolumeFileError as error:
                        raise Conflict('IncorrectState', f'The volume could not be grown: {error}') from None
            row.size_gib, row.volume_type, row.iops, row.throughput = new_size, new_type, new_iops, new_throughput
            modification = _record_modification(session, row, before)
        self.wake_workers()
        return modification

    def modifications(self, owner, volume_ids=None):
        """DescribeVolumesModifications: the latest modification of each of the owner's volumes."""
        for volume_id in volume_ids or ():
            check_volume_id(volume_id)
        with self.db.read() as session:
            query = select(ModificationRow).where(ModificationRow.owner == owner).order_by(ModificationRow.volume_id)
            if volume_ids:
                query = query.where(ModificationRow.volume_id.in_(list(volume_ids)))
            found = [_modification(row) for row in session.scalars(query)]
        if volume_ids:
            missing = sorted(set(volume_ids) - {m.volume_id for m in found})
            if missing:
                raise NotFound('InvalidVolumeModification.NotFound',
                               f"Modification for volume '{missing[0]}' does not exist.")
        return found

    def set_auto_enable_io(self, owner, volume_id, value):
        with self.db.write() as session:
            self._owned(session, owner, volume_id).auto_enable_io = bool(value)

    # -- attachments ---------------------------------------------------------------------------------

    def attach(self, owner, volume_id, instance_id, device):
        self.check_device(device)
        with self.db.write() as session:
            row = self._owned(session, owner, volume_id)
            instance = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == instance_id,
                                                                InstanceRow.owner == owner).with_for_update())
            if instance is None or instance.state == State.TERMINATED.value:
                raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
            if row.state == VolumeState.IN_USE.value:
                raise Conflict('VolumeInUse', f'{volume_id} is already attached to an instance')
            if instance.zone != row.zone:
                raise InvalidValue(f'The volume {volume_id} is not in the same availability zone as instance '
                                   f'{instance_id}', code='InvalidVolume.ZoneMismatch')
            if instance.state not in ATTACHABLE:
                raise Conflict('IncorrectState', f"Instance '{instance_id}' is not 'running' or 'stopped'.")
            require_feature(session, instance, Feature.DISK_HOTPLUG, 'take volumes of this cloud')
            taken = session.scalar(select(func.count()).select_from(VolumeRow).where(
                VolumeRow.instance_id == instance_id, _same_letter(device)))
            if taken:
                raise InvalidValue(f'Attachment point {device} is already in use')
            row.state = next_volume_state(row.state, VolumeEvent.ATTACH, volume_id).value
            row.instance_id, row.device = instance_id, device
            row.attachment_state, row.attached_at = AttachmentState.ATTACHING.value, utcnow()
            row.delete_on_termination, row.force_detach = False, False
            try:
                session.flush()
            except IntegrityError:
                raise InvalidValue(f'Attachment point {device} is already in use') from None
            attachment = _attachments_of(row)[0]
        self.wake_workers()
        return attachment

    def detach(self, owner, volume_id, instance_id=None, device=None, force=False):
        with self.db.write() as session:
            row = self._owned(session, owner, volume_id)
            if row.attachment_state is None:
                raise Conflict('IncorrectState', f"Volume '{volume_id}' is in the 'available' state.")
            if (instance_id and instance_id != row.instance_id) or (device and device != row.device):
                raise NotFound('InvalidAttachment.NotFound', f"The volume '{volume_id}' is not attached to "
                                                             f"'{instance_id or device}'")
            row.attachment_state = next_attachment_state(row.attachment_state, AttachmentEvent.DETACH,
                                                         volume_id).value
            row.force_detach = row.force_detach or bool(force)
            attachment = _attachments_of(row)[0]
        self.wake_workers()
        return attachment

    def set_delete_on_termination(self, owner, instance_id, device, value):
        """ModifyInstanceAttribute BlockDeviceMapping: DeleteOnTermination of an attached volume."""
        with self.db.write() as session:
            row = session.scalar(select(VolumeRow).where(VolumeRow.owner == owner, VolumeRow.instance_id == instance_id,
                                                         VolumeRow.device == device))
            if row is None:
                raise InvalidValue(f'No volume is attached at {device} of {instance_id}',
                                   code='InvalidInstanceAttributeValue')
            row.delete_on_termination = bool(value)

    # -- recovery ------------------------------------------------------------------------------------

    def recover(self):
        """After a crash: finish what CreateVolume, RunInstances and DeleteVolume began."""
        return self._finish_creating() + self.reap()

    def reap(self):
        """Remove the files of volumes being deleted (those their instances took with them), and
        make those whose creator died before making them (a launch waits for them)."""
        with self.db.read() as session:
            deleting = session.scalars(select(VolumeRow.volume_id).where(
                VolumeRow.state == VolumeState.DELETING.value)).all()
        for volume_id in deleting:
            self._finish_deleting(volume_id)
        self._grow_detached()
        self._finish_creating(utcnow() - datetime.timedelta(seconds=STALE_CREATING_SECONDS))
        return len(deleting)

    def _finish_creating(self, before=None):
        """Make the files of volumes still `creating` (those recorded before `before`, if given)."""
        with self.db.read() as session:
            query = select(VolumeRow.volume_id, VolumeRow.size_gib, VolumeRow.backing_id).where(
                VolumeRow.state == VolumeState.CREATING.value)
            if before is not None:
                query = query.where(VolumeRow.created_at < before)
            creating = session.execute(query).all()
        for volume_id, size_gib, backing_id in creating:
            if self.files.exists(volume_id):
                self._record_creation(volume_id, VolumeEvent.CREATED)
            else:
                self._make_file(volume_id, size_gib, backing_id)
        return len(creating)

    def _grow_detached(self):
        """A growth asked while attached, whose volume was detached before its host carried it out."""
        with self.db.read() as session:
            due = session.execute(select(VolumeRow.volume_id, VolumeRow.size_gib).where(
                VolumeRow.resize_pending.is_(True), VolumeRow.attachment_state.is_(None))).all()
        for volume_id, size_gib in due:
            try:
                self.files.grow(volume_id, size_gib)
            except VolumeFileError as error:
                log.warning('cannot grow %s: %s', volume_id, error)
                continue
            with self.db.write() as session:
                grown = session.execute(update(VolumeRow).where(VolumeRow.volume_id == volume_id,
                                                                VolumeRow.attachment_state.is_(None))
                                        .values(resize_pending=False)).rowcount
                if grown:
                    finish_modification(session, volume_id)

    def _owned(self, session, owner, volume_id):
        check_volume_id(volume_id)
        row = session.scalar(select(VolumeRow).where(VolumeRow.volume_id == volume_id, VolumeRow.owner == owner)
                             .with_for_update())
        if row is None:
            raise NotFound('InvalidVolume.NotFound', f"The volume '{volume_id}' does not exist.")
        return row


def release_volumes(session, instance_id):
    """An instance ended: its DeleteOnTermination volumes are deleted (files removed by `reap`), the
    others detached and available again."""
    for row in session.scalars(select(VolumeRow).where(VolumeRow.instance_id == instance_id)):
        row.instance_id = row.device = row.attachment_state = row.attached_at = None
        row.state = VolumeState.AVAILABLE.value
        if row.delete_on_termination:
            row.state = VolumeState.DELETING.value
        row.delete_on_termination = row.force_detach = False


@dataclasses.dataclass(frozen=True)
class Modification:
    volume_id: str
    state: str
    original: tuple          # (size GiB, type, IOPS, throughput)
    target: tuple
    started_at: datetime.datetime
    ended_at: datetime.datetime | None


def _record_modification(session, row, before):
    """The volume's latest modification: done now, or 'modifying' while its host grows the disk."""
    done = not row.resize_pending
    now = utcnow()
    values = dict(owner=row.owner, state='completed' if done else 'modifying',
                  original_size_gib=before.size_gib, original_type=before.volume_type,
                  original_iops=effective_iops(before.volume_type, before.size_gib, before.iops),
                  original_throughput=before.throughput, target_size_gib=row.size_gib, target_type=row.volume_type,
                  target_iops=effective_iops(row.volume_type, row.size_gib, row.iops),
                  target_throughput=row.throughput, started_at=now, ended_at=now if done else None)
    record = session.get(ModificationRow, row.volume_id)
    if record is None:
        record = ModificationRow(volume_id=row.volume_id, **values)
        session.add(record)
    else:
        for key, value in values.items():
            setattr(record, key, value)
    session.flush()
    return _modification(record)


def finish_modification(session, volume_id):
    """The host has grown the volume's disk: its modification is complete."""
    session.execute(update(ModificationRow).where(ModificationRow.volume_id == volume_id,
                                                  ModificationRow.state == 'modifying')
                    .values(state='completed', ended_at=utcnow()))


def _modification(row):
    return Modification(row.volume_id, row.state,
                        (row.original_size_gib, row.original_type, row.original_iops, row.original_throughput),
                        (row.target_size_gib, row.target_type, row.target_iops, row.target_throughput),
                        row.started_at, row.ended_at)


def _same_letter(device):
    letter = DEVICE.fullmatch(device).group(1)
    return VolumeRow.device.in_([f'/dev/sd{letter}', f'/dev/xvd{letter}', f'sd{letter}', f'xvd{letter}'])


def _attachments_of(row):
    if row.attachment_state is None:
        return ()
    return (Attachment(row.volume_id, row.instance_id, row.device, row.attachment_state, row.attached_at,
                       row.delete_on_termination),)


def _volume(row, attachments):
    return Volume(row.volume_id, row.owner, row.zone, row.size_gib, row.volume_type, row.iops, row.throughput,
                  row.snapshot_id, row.state, row.created_at, row.auto_enable_io, tuple(attachments),
                  bool(row.resize_pending))
