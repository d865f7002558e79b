"""Volumes in-process: the state tables, crash recovery, the quota, and the disk a host is handed."""
import datetime

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import update

from backend.drivers import domain_xml
from backend.drivers.base import VolumeDisk
from backend.errors import BackendError, Conflict
from backend.models import Volume as VolumeRow
from backend.storage.volume_states import (VOLUME_TRANSITIONS, VolumeEvent, VolumeState, next_volume_state)
from backend.storage.volumes import CreateRequest, guest_target

ZONE = 'reservoir-1a'


@given(st.lists(st.sampled_from(list(VolumeEvent)), max_size=20))
def test_events_move_a_volume_only_along_the_table(events):
    state = VolumeState.CREATING
    for event in events:
        try:
            target = next_volume_state(state.value, event, 'vol-0123456789abcdef0')
        except Conflict:
            assert (state, event) not in VOLUME_TRANSITIONS
            continue
        assert VOLUME_TRANSITIONS[(state, event)] is target
        state = target


def test_an_attached_volume_cannot_be_deleted():
    with pytest.raises(Conflict) as refused:
        next_volume_state('in-use', VolumeEvent.DELETE, 'vol-0123456789abcdef0')
    assert refused.value.code == 'VolumeInUse'


def test_recovery_finishes_what_a_crash_interrupted(cloud):
    owner = cloud.users.create('alice').account_id
    made = cloud.volumes.create(owner, CreateRequest(ZONE, 1))
    doomed = cloud.volumes.create(owner, CreateRequest(ZONE, 1))
    files = cloud.volumes.files
    # As if the process had died after recording the volume, before making its file; and after
    # marking the other deleting, before removing its file.
    files.remove(made.volume_id)
    with cloud.db.write() as session:
        session.execute(update(VolumeRow).where(VolumeRow.volume_id == made.volume_id).values(state='creating'))
        session.execute(update(VolumeRow).where(VolumeRow.volume_id == doomed.volume_id).values(state='deleting'))
    assert cloud.volumes.recover() == 2
    assert [v.state for v in cloud.volumes.describe(owner)] == ['available']
    assert files.exists(made.volume_id) and not files.exists(doomed.volume_id)


def test_volumes_count_at_full_size_against_the_storage_quota(cloud):
    owner = cloud.users.create('alice').account_id
    cloud.quotas.set(owner, {'storage': 3 * 1024 ** 3})
    cloud.volumes.create(owner, CreateRequest(ZONE, 2))
    with pytest.raises(BackendError) as refused:
        cloud.volumes.create(owner, CreateRequest(ZONE, 2))
    assert refused.value.code == 'VolumeLimitExceeded'
    assert sum(path.stat().st_blocks for path in cloud.volumes.files.root.iterdir()) * 512 < 10 * 1024 ** 2


def test_the_disk_a_host_is_handed():
    disk = VolumeDisk('vol-0123456789abcdef0', '/state/volumes/vol-0123456789abcdef0.qcow2', guest_target('/dev/sdf'),
                      iops=3000, bytes_per_second=125 * 1024 ** 2)
    xml = domain_xml.volume_disk(disk, 'qemu')
    assert "<target dev=\"vdf\" bus=\"virtio\"/>" in xml
    assert '<serial>vol0123456789abcdef0</serial>' in xml
    assert '<total_iops_sec>3000</total_iops_sec>' in xml and '<total_bytes_sec>131072000</total_bytes_sec>' in xml
    assert guest_target('xvdg', 'xen') == 'xvdg'
    assert domain_xml.disk_targets(f'<domain><devices>{xml}</devices></domain>') == {'vdf'}


def test_a_volume_its_creator_left_unmade_is_made_by_the_reaper_once_stale(cloud):
    # As if an API process had died between recording a launch's volume and making its file.
    owner = cloud.users.create('alice').account_id
    made = cloud.volumes.create(owner, CreateRequest(ZONE, 1))
    cloud.volumes.files.remove(made.volume_id)
    with cloud.db.write() as session:
        session.execute(update(VolumeRow).where(VolumeRow.volume_id == made.volume_id).values(state='creating'))
    cloud.volumes.reap()
    assert not cloud.volumes.files.exists(made.volume_id), 'a fresh creation was taken for a stale one'
    with cloud.db.write() as session:
        session.execute(update(VolumeRow).where(VolumeRow.volume_id == made.volume_id).values(
            created_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)))
    cloud.volumes.reap()
    assert cloud.volumes.files.exists(made.volume_id)
    assert [v.state for v in cloud.volumes.describe(owner)] == ['available']
