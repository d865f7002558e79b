"""Pending snapshots taken by the workers.

Three kinds, by what holds the volume:
- a copy (CopySnapshot): an empty overlay of the source's file, O(1);
- a volume no running guest holds (unattached, or its instance stopped): its file frozen into the
  snapshot's, O(1) (`VolumeFiles.freeze`), under the volume's row lock so no attach slips in;
- volumes attached to a running instance: only the worker driving its host may touch them; the
  driver pauses the guest, copies what each volume holds above its previous snapshot, and resumes
  it, so the snapshots of one CreateSnapshots are crash-consistent together.

A worker claims the snapshots it takes (`claimed_by`, `claimed_until`), so two never take one; the
claims of a worker that died on this machine are released when its successor starts, and every step
can be done again after a crash.
"""
import datetime
import logging
import os
import socket

from sqlalchemy import or_, select, update

from ..drivers.base import DiskCopy, DriverError
from ..lifecycle import State
from ..models import Image as ImageRow, Instance as InstanceRow, Snapshot as SnapshotRow, Volume as VolumeRow, utcnow
from .disk_attachments import volume_disk
from .ebs_images import settle_pending
from .snapshot_states import SnapshotState
from .snapshots import freeze_into, record_failed, record_taken
from .volume_files import VolumeFileError
from .volume_states import AttachmentState

log = logging.getLogger(__name__)

CLAIM_SECONDS = 600
BATCH = 200
# Instance states whose disks no guest holds: the files can be frozen directly.
AT_REST = (State.STOPPED.value, State.CLEANING_UP.value, State.TERMINATED.value, State.FAILED.value)
# Instance states in which a running guest's disks are copied while it is paused.
LIVE = (State.RUNNING.value, State.IMPAIRED.value)


class SnapshotJobs:
    def __init__(self, worker, files):
        self.worker = worker
        self.db = worker.db
        self.files = files

    def recover(self):
        """Release the claims of workers of this machine that are gone (a crash, a kill)."""
        with self.db.read() as session:
            holders = set(session.scalars(select(SnapshotRow.claimed_by).where(
                SnapshotRow.state == SnapshotState.PENDING.value, SnapshotRow.claimed_by.is_not(None))))
        gone = {holder for holder in holders if holder != self.worker.worker_id and _gone(holder)}
        self.worker.cloud.volume_snapshots.release_claims(gone)

    def dispatch(self):
        """Take the pending snapshots this worker can, then make available the EBS-backed images whose
        snapshots are all taken; True if any was taken."""
        taken = self._take_pending()
        if taken:
            self.settle_images()
        return taken

    def settle_images(self):
        """EBS-backed images whose snapshots are all taken become available; also run every monitor
        round, for an image registered while its last snapshot was being recorded."""
        with self.db.read() as session:
            if not session.scalar(select(ImageRow.image_id).where(ImageRow.state == 'pending',
                                                                  ImageRow.root_device_type == 'ebs').limit(1)):
                return
        with self.db.write() as session:
            settle_pending(session)

    def _take_pending(self):
        with self.db.read() as session:
            pending = session.execute(
                select(SnapshotRow.snapshot_id, SnapshotRow.volume_id, SnapshotRow.source_snapshot_id,
                       SnapshotRow.batch, VolumeRow.attachment_state, InstanceRow.instance_id, InstanceRow.state,
                       InstanceRow.host_id)
                .outerjoin(VolumeRow, VolumeRow.volume_id == SnapshotRow.volume_id)
                .outerjoin(InstanceRow, InstanceRow.instance_id == VolumeRow.instance_id)
                .where(SnapshotRow.state == SnapshotState.PENDING.value,
                       or_(SnapshotRow.claimed_until.is_(None), SnapshotRow.claimed_until < utcnow()))
                .order_by(SnapshotRow.snapshot_id).limit(BATCH)).all()
        if not pending:
            return False
        owned = self.worker.owned_hosts()
        live = {}
        taken = False
        for row in pending:
            if row.source_snapshot_id is not None:
                taken |= self._copy(row.snapshot_id, row.source_snapshot_id)
            elif row.instance_id is None or row.state in AT_REST:
                taken |= self._freeze(row.snapshot_id)
            elif row.host_id in owned:
                live.setdefault((row.instance_id, row.host_id, row.state), []).append(row)
        for (instance_id, host_id, state), rows in live.items():
            taken |= self._take_live(instance_id, host_id, state, rows)
        return taken

    # -- the kinds -----------------------------------------------------------------------------------

    def _copy(self, snapshot_id, source_id):
        if not self._claim([snapshot_id]):
            return False
        try:
            self.files.overlay_snapshot(snapshot_id, source_id)
        except VolumeFileError as error:
            return self._fail([snapshot_id], str(error))
        with self.db.write() as session:
            row = session.get(SnapshotRow, snapshot_id)
            if row is not None and row.state == SnapshotState.PENDING.value:
                record_taken(session, row, source_id)
        return True

    def _freeze(self, snapshot_id, unheld=False):
        """A volume no guest holds (`unheld`: its host's driver said so): frozen under its row lock,
        which AttachVolume waits for."""
        if not self._claim([snapshot_id]):
            return False
        with self.db.read() as session:
            found = session.execute(select(VolumeRow.volume_id, VolumeRow.size_gib).join(
                SnapshotRow, SnapshotRow.volume_id == VolumeRow.volume_id).where(
                SnapshotRow.snapshot_id == snapshot_id)).first()
        if found is not None:
            try:    # the slow part, before the write lock (SQLite's is the whole database's)
                self.files.prepare_freeze(found.volume_id, snapshot_id, found.size_gib)
            except VolumeFileError as error:
                log.warning('cannot prepare the snapshot %s: %s', snapshot_id, error)
        with self.db.write() as session:
            volume_id = session.scalar(select(SnapshotRow.volume_id).where(SnapshotRow.snapshot_id == snapshot_id))
            volume = session.scalar(select(VolumeRow).where(VolumeRow.volume_id == volume_id).with_for_update())
            snapshot = session.scalar(select(SnapshotRow).where(SnapshotRow.snapshot_id == snapshot_id)
                                      .with_for_update().execution_options(populate_existing=True))
            if snapshot is None or snapshot.state != SnapshotState.PENDING.value:
                return False       # taken meanwhile (DeleteVolume takes its volume's pending snapshots)
            if volume is None:
                record_failed(snapshot, 'The volume was deleted before its snapshot was taken.')
                return True
            if volume.instance_id is not None and not unheld and not self._at_rest(session, volume.instance_id):
                snapshot.claimed_by = snapshot.claimed_until = None   # attached meanwhile: its host's worker takes it
                return False
            try:
                freeze_into(session, self.files, volume, snapshot)
            except VolumeFileError as error:
                log.warning('cannot snapshot %s: %s', volume.volume_id, error)
                record_failed(snapshot, str(error))
        return True

    def _take_live(self, instance_id, host_id, state, rows):
        """Volumes of an instance on a host of ours, those of one CreateSnapshots together."""
        if state not in LIVE or any(row.attachment_state != AttachmentState.ATTACHED.value for row in rows):
            return False           # between states, or a volume being plugged: the next round
        ids = [row.snapshot_id for row in rows]
        if not self.worker.claim_instance(instance_id):
            return False
        try:
            if not self._claim(ids):
                return False
            driver = self.worker.driver_of(host_id)
            if driver is None:
                return self._release(ids)
            volumes = self._volumes_of(ids)
            gone = [snapshot_id for snapshot_id in ids if snapshot_id not in volumes]
            if gone:                           # deleted with their instance since the round began
                self._fail(gone, 'The volume was deleted before its snapshot was taken.')
                ids = [snapshot_id for snapshot_id in ids if snapshot_id in volumes]
                if not ids:
                    return True
            domain_type = self.worker.domain_type_of(host_id)
            copies = [self._copy_of(volumes[snapshot_id], snapshot_id, domain_type) for snapshot_id in ids
                      if not self.files.snapshot_exists(snapshot_id)]
            try:
                held = driver.snapshot_disks(instance_id, copies)
            except DriverError as error:
                log.warning('cannot snapshot the volumes of %s: %s', instance_id, error)
                return self._fail(ids, str(error))
            if not held:
                self._release(ids)
                return any([self._freeze(snapshot_id, unheld=True) for snapshot_id in ids])
            with self.db.write() as session:
                for snapshot_id in ids:
                    snapshot = session.get(SnapshotRow, snapshot_id)
                    if snapshot is not None and snapshot.state == SnapshotState.PENDING.value:
                        record_taken(session, snapshot, volumes[snapshot_id].backing_id)
            return True
        finally:
            self.worker.release_instance(instance_id)

    # -- helpers -------------------------------------------------------------------------------------

    def _copy_of(self, volume, snapshot_id, domain_type):
        disk = volume_disk(self.files, volume.volume_id, volume.device, volume.volume_type, volume.size_gib,
                           volume.iops, volume.throughput, domain_type)
        base = str(self.files.snapshot_path(volume.backing_id).absolute()) if volume.backing_id else None
        return DiskCopy(disk=disk, target=str(self.files.snapshot_path(snapshot_id)), base=base)

    def _volumes_of(self, snapshot_ids):
        """{snapshot_id: volume row (detached from the session)} for snapshots being taken."""
        with self.db.read() as session:
            rows = session.execute(select(SnapshotRow.snapshot_id, VolumeRow).join(
                VolumeRow, VolumeRow.volume_id == SnapshotRow.volume_id).where(
                SnapshotRow.snapshot_id.in_(snapshot_ids))).all()
            session.expunge_all()
        self.files.snapshots_root.mkdir(parents=True, exist_ok=True)
        return {snapshot_id: volume for snapshot_id, volume in rows}

    @staticmethod
    def _at_rest(session, instance_id):
        return session.scalar(select(InstanceRow.state).where(InstanceRow.instance_id == instance_id)) in AT_REST

    def _claim(self, ids):
        """All of `ids` for this worker, or none."""
        now = utcnow()
        with self.db.write() as session:
            claimed = session.execute(
                update(SnapshotRow).where(SnapshotRow.snapshot_id.in_(ids),
                                          SnapshotRow.state == SnapshotState.PENDING.value,
                                          or_(SnapshotRow.claimed_until.is_(None), SnapshotRow.claimed_until < now))
                .values(claimed_by=self.worker.worker_id,
                        claimed_until=now + datetime.timedelta(seconds=CLAIM_SECONDS))).rowcount
            if claimed != len(ids):
                session.rollback()
                return False
        return True

    def _release(self, ids):
        with self.db.write() as session:
            session.execute(update(SnapshotRow).where(SnapshotRow.snapshot_id.in_(ids),
                                                      SnapshotRow.claimed_by == self.worker.worker_id)
                            .values(claimed_by=None, claimed_until=None))
        return False

    def _fail(self, ids, reason):
        with self.db.write() as session:
            for snapshot_id in ids:
                snapshot = session.get(SnapshotRow, snapshot_id)
                if snapshot is not None and snapshot.state == SnapshotState.PENDING.value:
                    record_failed(snapshot, reason)
        return True


def _gone(holder):
    """True when a worker id (<machine>-<pid>-<token>) names a process of this machine that has ended."""
    parts = holder.rsplit('-', 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
