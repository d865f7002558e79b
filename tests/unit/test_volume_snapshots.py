"""EBS snapshots in-process: freezing a volume's file again after a crash at any step, claims of dead
workers, and the bookkeeping of layers under any sequence of snapshots, restores, copies and deletions
(every file needed is there, with the right content; no file is left that nothing needs)."""
import datetime
import json
import os
import socket
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select, update

from backend.errors import BackendError
from backend.models import Snapshot as SnapshotRow, Volume as VolumeRow
from backend.storage.snapshot_jobs import SnapshotJobs
from backend.storage.volume_files import VolumeFiles
from backend.storage.volumes import CreateRequest
from backend.worker import Worker

ZONE = 'reservoir-1a'


def write_byte(path, byte):
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', f'write -P {byte} 0 64k', str(path)], check=True,
                   capture_output=True)


def holds_byte(path, byte):
    result = subprocess.run(['qemu-io', '-r', '-U', '-f', 'qcow2', '-c', f'read -P {byte} 0 64k', str(path)],
                            capture_output=True, text=True)
    return result.returncode == 0 and 'Pattern verification failed' not in result.stdout


def backing_of(path):
    shown = subprocess.run(['qemu-img', 'info', '-U', '--output=json', str(path)], capture_output=True, text=True,
                           check=True).stdout
    return json.loads(shown).get('backing-filename')


# -- freezing, step by step ----------------------------------------------------------------------------

@pytest.mark.parametrize('crash_after', ['overlay made', 'snapshot linked'])
def test_a_freeze_interrupted_at_any_step_is_finished_by_doing_it_again(tmp_path, crash_after):
    files = VolumeFiles(tmp_path / 'volumes', tmp_path / 'snapshots')
    files.create('vol-1', 1)
    write_byte(files.path('vol-1'), 0x5a)
    volume, frozen = files.path('vol-1'), files.snapshot_path('snap-1')
    files.snapshots_root.mkdir()
    # What a process that died mid-way leaves: the next overlay made, and maybe the snapshot linked.
    files.prepare_freeze('vol-1', 'snap-1', 1)
    if crash_after == 'snapshot linked':
        os.link(volume, frozen)
    files.freeze('vol-1', 'snap-1', 1)
    assert sorted(path.name for path in files.root.iterdir()) == ['vol-1.qcow2']
    assert backing_of(volume) == str(frozen.absolute())
    assert holds_byte(frozen, 0x5a) and holds_byte(volume, 0x5a)
    write_byte(volume, 0x6b)
    assert holds_byte(frozen, 0x5a), 'a write to the volume reached its snapshot'


# -- claims ------------------------------------------------------------------------------------------

def test_claims_of_a_dead_worker_of_this_machine_are_released_and_others_kept(cloud):
    owner = cloud.users.create('alice').account_id
    volume = cloud.volumes.create(owner, CreateRequest(ZONE, 1))
    dead, alive = (cloud.volume_snapshots.create(owner, volume.volume_id) for _ in range(2))
    holders = {dead.snapshot_id: f'{socket.gethostname()}-{_ended_pid()}-abc123',
               alive.snapshot_id: f'{socket.gethostname()}-{os.getpid()}-def456'}
    with cloud.db.write() as session:
        for snapshot_id, holder in holders.items():
            session.execute(update(SnapshotRow).where(SnapshotRow.snapshot_id == snapshot_id)
                            .values(claimed_by=holder, claimed_until=_far_future()))
    worker = Worker(cloud)
    SnapshotJobs(worker, cloud.volumes.files).recover()
    with cloud.db.read() as session:
        claims = dict(session.execute(select(SnapshotRow.snapshot_id, SnapshotRow.claimed_by)).all())
    assert claims == {dead.snapshot_id: None, alive.snapshot_id: holders[alive.snapshot_id]}


def _ended_pid():
    """A pid whose process has ended (one reused at once is vanishingly rare)."""
    process = subprocess.Popen(['true'])
    process.wait()
    return process.pid


def _far_future():
    return datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)


# -- bookkeeping under any sequence ------------------------------------------------------------------

OPERATIONS = st.lists(st.tuples(st.sampled_from(['volume', 'write', 'snapshot', 'restore', 'copy',
                                                 'delete-snapshot', 'delete-volume']),
                                st.integers(0, 5)), min_size=1, max_size=14)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(operations=OPERATIONS)
def test_layers_stay_exactly_as_needed_under_any_sequence(tmp_path_factory, operations):
    from backend.cloud import Cloud
    from backend.config import load_config
    home = tmp_path_factory.mktemp('layers')
    cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(home)}))
    try:
        _run_sequence(cloud, operations)
    finally:
        cloud.close()


def _run_sequence(cloud, operations):
    owner = cloud.users.create('alice').account_id
    files, snapshots = cloud.volumes.files, cloud.volume_snapshots
    jobs = SnapshotJobs(Worker(cloud), files)
    volumes, taken = {}, {}                 # id -> the byte it holds (0 for nothing written)
    next_byte = iter(range(1, 250))
    for operation, pick in operations:
        try:
            if operation == 'volume':
                volumes[cloud.volumes.create(owner, CreateRequest(ZONE, 1)).volume_id] = 0
            elif operation == 'write' and volumes:
                volume_id = _pick(volumes, pick)
                volumes[volume_id] = next(next_byte)
                write_byte(files.path(volume_id), volumes[volume_id])
            elif operation == 'snapshot' and volumes:
                volume_id = _pick(volumes, pick)
                taken[snapshots.create(owner, volume_id).snapshot_id] = volumes[volume_id]
                jobs.dispatch()
            elif operation == 'restore' and taken:
                snapshot_id = _pick(taken, pick)
                volumes[cloud.volumes.create(owner, CreateRequest(ZONE, None, snapshot_id=snapshot_id)).volume_id] = \
                    taken[snapshot_id]
            elif operation == 'copy' and taken:
                source = _pick(taken, pick)
                taken[snapshots.copy(owner, source).snapshot_id] = taken[source]
                jobs.dispatch()
            elif operation == 'delete-snapshot' and taken:
                snapshot_id = _pick(taken, pick)
                snapshots.delete(owner, snapshot_id)
                del taken[snapshot_id]
            elif operation == 'delete-volume' and volumes:
                volume_id = _pick(volumes, pick)
                cloud.volumes.delete(owner, volume_id)
                del volumes[volume_id]
        except BackendError as refused:
            raise AssertionError(f'{operation} refused: {refused}') from None
        _check_layers(cloud)
    for volume_id, byte in volumes.items():
        assert byte == 0 or holds_byte(files.path(volume_id), byte), f'{volume_id} lost its data'
    for snapshot_id, byte in taken.items():
        assert byte == 0 or holds_byte(files.snapshot_path(snapshot_id), byte), f'{snapshot_id} lost its data'


def _pick(items, index):
    keys = sorted(items)
    return keys[index % len(keys)]


def _check_layers(cloud):
    """Every file is a row's, every row's file is there, and each file is built on what its row says."""
    files = cloud.volumes.files
    with cloud.db.read() as session:
        snapshot_rows = {row.snapshot_id: row.backing_id for row in session.scalars(select(SnapshotRow))}
        volume_rows = {row.volume_id: row.backing_id for row in session.scalars(select(VolumeRow))}
        pending = session.scalars(select(SnapshotRow.snapshot_id).where(SnapshotRow.state == 'pending')).all()
    assert not pending, 'a snapshot of an unattached volume stayed pending'
    on_disk = {path.stem for path in files.snapshots_root.glob('*.qcow2')} if files.snapshots_root.exists() else set()
    assert on_disk == set(snapshot_rows), 'snapshot files and rows differ (a leak, or a file gone too soon)'
    assert {path.stem for path in files.root.glob('*')} == set(volume_rows)
    for snapshot_id, backing_id in snapshot_rows.items():
        assert backing_of(files.snapshot_path(snapshot_id)) == (
            str(files.snapshot_path(backing_id).absolute()) if backing_id else None)
    for volume_id, backing_id in volume_rows.items():
        assert backing_of(files.path(volume_id)) == (
            str(files.snapshot_path(backing_id).absolute()) if backing_id else None)
