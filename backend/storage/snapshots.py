"""EBS snapshots: asked for, copied, shared, described and deleted.

The API records a snapshot `pending` and wakes the workers; `snapshot_jobs` takes it (only the worker
driving a running instance may touch its disks). Snapshot files are immutable layers
(`volume_files`): a snapshot is usually an overlay of the volume's previous snapshot, and a volume made
from a snapshot an overlay of its file, so neither copies data. A deleted snapshot's file stays while
a volume or another snapshot is built on it (`reap` removes it after); its row, hidden, keeps that
bookkeeping in the database.

Sharing is AWS's createVolumePermission: accounts, or the group `all`. An account sees its own
snapshots and those it may create volumes from; only the owner sees who they are shared with.
"""
import dataclasses
import datetime
import re

from sqlalchemy import exists, or_, select, update

from ..errors import BackendError, Conflict, InvalidValue, NotFound
from ..lifecycle import State
from ..models import (Image as ImageRow, ImageBlockDevice, Instance as InstanceRow, Snapshot as SnapshotRow,
                      SnapshotPermission, Tag, Volume as VolumeRow, is_resource_id, new_resource_id)
from .snapshot_states import VISIBLE, SnapshotEvent, SnapshotState, next_snapshot_state
from .volume_states import VolumeState

MAX_DESCRIPTION_LENGTH = 255
COPIED_VOLUME_ID = 'vol-ffffffff'      # what AWS shows as the volume of a copied snapshot
PUBLIC_GROUP = 'all'
ACCOUNT_ID = re.compile(r'[0-9]{12}')
# Pseudo-owners DescribeSnapshots accepts; no snapshot here belongs to them.
VENDOR_OWNERS = ('amazon', 'aws-marketplace', 'aws-backup')


@dataclasses.dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    owner: str
    volume_id: str
    volume_size_gib: int
    description: str
    state: str
    state_message: str | None
    progress: int
    started_at: datetime.datetime


def check_snapshot_id(snapshot_id):
    if not is_resource_id(snapshot_id, 'snap'):
        raise InvalidValue(f"Invalid id: '{snapshot_id}' (expecting 'snap-...')", code='InvalidSnapshotID.Malformed')


def restorable_snapshot(session, account, snapshot_id, pending_ok=False):
    """The snapshot row `account` may create a volume from (its own, shared with it, or public), or the
    error CreateVolume answers; a pending one only if `pending_ok` (an image registered on it)."""
    check_snapshot_id(snapshot_id)
    row = session.scalar(select(SnapshotRow).where(SnapshotRow.snapshot_id == snapshot_id,
                                                   SnapshotRow.state.in_(VISIBLE), _visible_to(account)))
    if row is None:
        raise NotFound('InvalidSnapshot.NotFound', f"The snapshot '{snapshot_id}' does not exist.")
    if row.state != SnapshotState.COMPLETED.value and not (pending_ok and row.state == SnapshotState.PENDING.value):
        raise Conflict('IncorrectState', f"Snapshot '{snapshot_id}' is {row.state}: it is not yet usable")
    return row


def snapshot_in_use(session, snapshot_id):
    """The id of an image (not deregistered) built on the snapshot, or None."""
    return session.scalar(select(ImageBlockDevice.image_id)
                          .join(ImageRow, ImageRow.image_id == ImageBlockDevice.image_id)
                          .where(ImageBlockDevice.snapshot_id == snapshot_id, ImageRow.state != 'deregistered')
                          .limit(1))


def check_not_in_use(session, snapshot_id):
    image_id = snapshot_in_use(session, snapshot_id)
    if image_id is not None:
        raise Conflict('InvalidSnapshot.InUse', f'The snapshot {snapshot_id} is currently in use by {image_id}')


def freeze_into(session, files, volume, snapshot):
    """Take `snapshot` of `volume`, which no running guest holds, in O(1); both rows are locked by the
    caller's transaction and recorded taken."""
    files.freeze(volume.volume_id, snapshot.snapshot_id, volume.size_gib)
    record_taken(session, snapshot, volume.backing_id)
    volume.backing_id = snapshot.snapshot_id


def record_taken(session, snapshot, backing_id):
    """The snapshot's file is in place, an overlay of `backing_id`'s (or standalone)."""
    snapshot.backing_id = backing_id
    below = session.scalar(select(SnapshotRow.chain_depth).where(SnapshotRow.snapshot_id == backing_id)) \
        if backing_id else None
    snapshot.chain_depth = 1 + (below or 0)
    snapshot.state = next_snapshot_state(snapshot.state, SnapshotEvent.TAKEN, snapshot.snapshot_id).value
    snapshot.progress, snapshot.claimed_by, snapshot.claimed_until = 100, None, None


def record_failed(snapshot, reason):
    snapshot.state = next_snapshot_state(snapshot.state, SnapshotEvent.FAILED, snapshot.snapshot_id).value
    snapshot.state_message = reason[:255]
    snapshot.claimed_by = snapshot.claimed_until = None


class SnapshotService:
    def __init__(self, db, files, wake_workers=None):
        self.db = db
        self.files = files
        self.wake_workers = wake_workers or (lambda: None)

    # -- taking --------------------------------------------------------------------------------------

    def create(self, owner, volume_id, description=None):
        """CreateSnapshot: the volume as it is now; pending until a worker has its file in place."""
        description = _checked_description(description)
        if not is_resource_id(volume_id or '', 'vol'):
            raise InvalidValue(f"Invalid id: '{volume_id}' (expecting 'vol-...')", code='InvalidVolumeID.Malformed')
        with self.db.write() as session:
            volume = session.scalar(select(VolumeRow).where(VolumeRow.volume_id == volume_id, VolumeRow.owner == owner)
                                    .with_for_update())
            if volume is None:
                raise NotFound('InvalidVolume.NotFound', f"The volume '{volume_id}' does not exist.")
            made = self._add(session, owner, volume, description)
        self.wake_workers()
        return made

    def create_for_instance(self, owner, instance_id, exclude_ids=(), description=None):
        """CreateSnapshots: every volume attached to the instance, taken at one instant."""
        description = _checked_description(description)
        with self.db.write() as session:
            instance = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == instance_id,
                                                                InstanceRow.owner == owner))
            if instance is None or instance.state == State.TERMINATED.value:
                raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
            volumes = session.scalars(select(VolumeRow).where(
                VolumeRow.instance_id == instance_id, VolumeRow.volume_id.notin_(list(exclude_ids)))
                .order_by(VolumeRow.device).with_for_update()).all()
            batch = new_resource_id('snapset')
            made = [self._add(session, owner, volume, description, batch) for volume in volumes]
        self.wake_workers()
        return made

    def _add(self, session, owner, volume, description, batch=None):
        if volume.state not in (VolumeState.AVAILABLE.value, VolumeState.IN_USE.value):
            raise Conflict('IncorrectState', f"The volume '{volume.volume_id}' is '{volume.state}'")
        row = SnapshotRow(snapshot_id=new_resource_id('snap'), owner=owner, volume_id=volume.volume_id,
                          volume_size_gib=volume.size_gib, description=description,
                          state=SnapshotState.PENDING.value, progress=0, public=False, chain_depth=1, batch=batch)
        session.add(row)
        session.flush()
        return _snapshot(row)

    def copy(self, owner, source_id, description=None):
        """CopySnapshot (within this region): a new snapshot of the caller's with the source's content,
        an overlay of its file, so nothing is copied."""
        description = _checked_description(description)
        with self.db.write() as session:
            source = restorable_snapshot(session, owner, source_id)
            row = SnapshotRow(snapshot_id=new_resource_id('snap'), owner=owner, volume_id=COPIED_VOLUME_ID,
                              volume_size_gib=source.volume_size_gib, state=SnapshotState.PENDING.value, progress=0,
                              description=description or f'Copied from {source_id}', public=False,
                              backing_id=source_id, chain_depth=source.chain_depth + 1, source_snapshot_id=source_id)
            session.add(row)
            session.flush()
            made = _snapshot(row)
        self.wake_workers()
        return made

    def import_disk(self, owner, source, source_format, size_gib, description, public=False):
        """A completed snapshot of the owner's holding a copy of a disk image (see ebs_images)."""
        snapshot_id = new_resource_id('snap')
        self.files.import_snapshot(snapshot_id, source, source_format)
        try:
            with self.db.write() as session:
                row = SnapshotRow(snapshot_id=snapshot_id, owner=owner, volume_id=COPIED_VOLUME_ID,
                                  volume_size_gib=size_gib, description=_checked_description(description),
                                  state=SnapshotState.COMPLETED.value, progress=100, public=public, chain_depth=1)
                session.add(row)
                session.flush()
                return _snapshot(row)
        except BaseException:
            self.files.remove_snapshot(snapshot_id)
            raise

    # -- deleting ------------------------------------------------------------------------------------

    def delete(self, owner, snapshot_id):
        with self.db.write() as session:
            row = self._owned(session, owner, snapshot_id)
            check_not_in_use(session, snapshot_id)
            row.state = next_snapshot_state(row.state, SnapshotEvent.DELETE, snapshot_id).value
            row.public = False
            session.execute(SnapshotPermission.__table__.delete().where(SnapshotPermission.snapshot_id == snapshot_id))
            session.execute(Tag.__table__.delete().where(Tag.resource_id == snapshot_id))
        self.reap()

    def reap(self):
        """Remove the files (and hidden rows) of deleted snapshots nothing is built on any more; one
        removal may free the file below it, so this goes on until none is left."""
        removed = 0
        while True:
            above = SnapshotRow.__table__.alias('above')
            with self.db.read() as session:
                free = session.scalars(select(SnapshotRow.snapshot_id).where(
                    SnapshotRow.state == SnapshotState.DELETED.value,
                    ~exists().where(VolumeRow.backing_id == SnapshotRow.snapshot_id),
                    ~exists().where(above.c.backing_id == SnapshotRow.snapshot_id)).limit(500)).all()
            if not free:
                return removed
            for snapshot_id in free:
                self.files.remove_snapshot(snapshot_id)
            with self.db.write() as session:
                session.execute(SnapshotRow.__table__.delete().where(SnapshotRow.snapshot_id.in_(free),
                                                                     SnapshotRow.state == SnapshotState.DELETED.value))
            removed += len(free)

    # -- describing ----------------------------------------------------------------------------------

    def describe(self, account, ids=None, owners=None, restorable_by=None, after=None, limit=None):
        """The snapshots `account` may see (its own, and those it may create volumes from), narrowed to
        `owners` and to those any account of `restorable_by` may create volumes from."""
        for snapshot_id in ids or ():
            check_snapshot_id(snapshot_id)
        with self.db.read() as session:
            query = select(SnapshotRow).where(SnapshotRow.state.in_(VISIBLE), _visible_to(account)) \
                .order_by(SnapshotRow.snapshot_id)
            if ids:
                query = query.where(SnapshotRow.snapshot_id.in_(list(ids)))
            if owners:
                wanted = {account if owner == 'self' else owner for owner in owners}
                query = query.where(SnapshotRow.owner.in_(wanted - set(VENDOR_OWNERS)))
            if restorable_by:
                query = query.where(_restorable_by({account if user == 'self' else user for user in restorable_by}))
            if after:
                query = query.where(SnapshotRow.snapshot_id > after)
            if limit:
                query = query.limit(limit)
            found = [_snapshot(row) for row in session.scalars(query)]
        if ids and not (owners or restorable_by):
            missing = sorted(set(ids) - {snapshot.snapshot_id for snapshot in found})
            if missing:
                raise NotFound('InvalidSnapshot.NotFound', f"The snapshot '{missing[0]}' does not exist.")
        return found

    # -- createVolumePermission ----------------------------------------------------------------------

    def volume_permissions(self, owner, snapshot_id):
        """(public, accounts shared with): the owner's to know."""
        with self.db.read() as session:
            row = self._owned(session, owner, snapshot_id)
            shared = session.scalars(select(SnapshotPermission.account_id).where(
                SnapshotPermission.snapshot_id == snapshot_id).order_by(SnapshotPermission.account_id)).all()
            return row.public, tuple(shared)

    def change_volume_permission(self, owner, snapshot_id, add=(), remove=(), add_public=False, remove_public=False):
        for account in [*add, *remove]:
            if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
                raise InvalidValue(f"Invalid user id '{account}': an account id is 12 digits",
                                   code='InvalidUserID.Malformed')
        with self.db.write() as session:
            row = self._owned(session, owner, snapshot_id)
            if add_public or remove_public:
                row.public = bool(add_public) and not remove_public
            shared = set(session.scalars(select(SnapshotPermission.account_id).where(
                SnapshotPermission.snapshot_id == snapshot_id)))
            for account in dict.fromkeys(add):
                if account not in shared and account != owner:
                    session.add(SnapshotPermission(snapshot_id=snapshot_id, account_id=account))
                    shared.add(account)
            if set(remove) & shared:
                session.execute(SnapshotPermission.__table__.delete().where(
                    SnapshotPermission.snapshot_id == snapshot_id,
                    SnapshotPermission.account_id.in_(set(remove) & shared)))

    def reset_volume_permission(self, owner, snapshot_id):
        self.change_volume_permission(owner, snapshot_id, remove_public=True)
        with self.db.write() as session:
            session.execute(SnapshotPermission.__table__.delete().where(SnapshotPermission.snapshot_id == snapshot_id))

    def _owned(self, session, owner, snapshot_id):
        check_snapshot_id(snapshot_id)
        row = session.scalar(select(SnapshotRow).where(SnapshotRow.snapshot_id == snapshot_id,
                                                       SnapshotRow.state.in_(VISIBLE), _visible_to(owner)))
        if row is None:
            raise NotFound('InvalidSnapshot.NotFound', f"The snapshot '{snapshot_id}' does not exist.")
        if row.owner != owner:
            raise BackendError('AuthFailure', f'Not authorized for snapshot:{snapshot_id}')
        return row

    # -- after a crash -------------------------------------------------------------------------------

    def release_claims(self, holders):
        """Pending snapshots held by workers known to be gone are free to be taken again."""
        if not holders:
            return
        with self.db.write() as session:
            session.execute(update(SnapshotRow).where(SnapshotRow.claimed_by.in_(list(holders)))
                            .values(claimed_by=None, claimed_until=None))


def _visible_to(account):
    return or_(SnapshotRow.owner == account, SnapshotRow.public.is_(True),
               exists().where(SnapshotPermission.snapshot_id == SnapshotRow.snapshot_id,
                              SnapshotPermission.account_id == account))


def _restorable_by(accounts):
    """AWS's RestorableByUserIds: an account means the snapshots it owns or was given explicitly;
    `all` means the public ones."""
    clauses = [SnapshotRow.owner.in_(accounts),
               exists().where(SnapshotPermission.snapshot_id == SnapshotRow.snapshot_id,
                              SnapshotPermission.account_id.in_(accounts))]
    if PUBLIC_GROUP in accounts:
        clauses.append(SnapshotRow.public.is_(True))
    return or_(*clauses)


def _checked_description(description):
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidValue(f'Descriptions are at most {MAX_DESCRIPTION_LENGTH} characters long')
    return description or ''


def _snapshot(row):
    return Snapshot(row.snapshot_id, row.owner, row.volume_id, row.volume_size_gib, row.description, row.state,
                    row.state_message, row.progress, row.started_at)
