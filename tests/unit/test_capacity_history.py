"""What administrators look back on: capacity samples per host and for the cloud, pruned by the
window; the scheduler's refusals with each host's reason; launches and failures per interval."""
import datetime
import subprocess

import pytest

from backend.capacity_history import CapacityHistory
from backend.config import MonitorSettings
from backend.errors import CapacityError, InvalidValue, NotFound
from backend.instances import LaunchRequest, transition
from backend.launch_history import LaunchHistory
from backend.lifecycle import Event
from backend.models import CapacitySample, Instance as InstanceRow, LaunchEvent, PlacementFailure
from backend.placement_failures import PlacementFailures

T0 = datetime.datetime(2026, 12, 5, 12, 0, 0, tzinfo=datetime.timezone.utc)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def pool(cloud, tmp_path):
    """The cloud with two simulated hosts of 4 vCPUs, alice, and a public image: (cloud, owner, image id)."""
    owner = cloud.users.create('alice').account_id
    disk = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image = cloud.images.register_file(disk, 'tiny', owner, public=True)
    cloud.hosts.add_simulated(2, cpus=4, memory_mib=4096)
    return cloud, owner, image.image_id


def host_ids(cloud):
    return [host.host_id for host in cloud.hosts.list()]


def test_one_sample_per_host_per_interval_aligned_to_the_interval(pool):
    cloud, owner, image_id = pool
    clock = Clock(T0 + datetime.timedelta(seconds=7))
    history = CapacityHistory(cloud.db, MonitorSettings(sample_interval_seconds=60, history_seconds=3600), clock)
    assert history.sample(host_ids(cloud)) == 2
    cloud.instances.run(owner, LaunchRequest(image_id, 3, 3, 'm1.small'))
    clock.advance(30)
    assert history.sample(host_ids(cloud)) == 0                 # the same interval: nothing more
    clock.advance(30)
    assert history.sample(host_ids(cloud)) == 2
    first, second = history.samples('sim-00001')
    assert (first.time, second.time) == (T0, T0 + datetime.timedelta(seconds=60))
    assert (first.vcpu_used, first.vcpu_total, first.instance_count) == (0, 4, 0)
    cloud_wide = history.samples()
    assert [(s.time, s.vcpu_used, s.vcpu_total, s.memory_total_mib, s.instance_count, s.host_count)
            for s in cloud_wide] == [(T0, 0, 8, 8192, 0, 2), (T0 + datetime.timedelta(seconds=60), 3, 8, 8192, 3, 2)]
    assert [s.time for s in history.samples(start=T0 + datetime.timedelta(seconds=1))] == [second.time]
    assert [s.time for s in history.samples(end=T0)] == [T0]


def test_a_restarted_monitor_does_not_sample_an_interval_twice(pool):
    cloud, _owner, _image_id = pool
    settings = MonitorSettings(sample_interval_seconds=60, history_seconds=3600)
    clock = Clock()
    assert CapacityHistory(cloud.db, settings, clock).sample(host_ids(cloud)) == 2
    assert CapacityHistory(cloud.db, settings, clock).sample(host_ids(cloud)) == 0
    assert [s.host_count for s in CapacityHistory(cloud.db, settings, clock).samples()] == [2]


def test_samples_and_failures_and_launches_older_than_the_window_are_pruned(pool):
    cloud, owner, _image_id = pool
    clock = Clock()
    history = CapacityHistory(cloud.db, MonitorSettings(sample_interval_seconds=60, history_seconds=300), clock)
    with cloud.db.write() as session:
        session.add(PlacementFailure(time=T0, owner=owner, instance_type='m1.small', count=1, reason='full'))
        session.add(LaunchEvent(time=T0, owner=owner, kind='launched', count=2))
    for _ in range(10):
        history.sample(host_ids(cloud))
        clock.advance(60)
    kept = [s.time for s in history.samples('sim-00002')]
    assert kept[0] == clock.now - datetime.timedelta(seconds=60 + 300) and len(kept) == 6
    with cloud.db.read() as session:
        assert session.query(PlacementFailure).count() == 0 and session.query(LaunchEvent).count() == 0
        assert session.query(CapacitySample).count() == 12


def test_history_of_an_unknown_host_or_a_reversed_range_is_refused(pool):
    cloud = pool[0]
    with pytest.raises(NotFound) as refused:
        cloud.capacity_history.samples('no-such-host')
    assert refused.value.code == 'InvalidHost.NotFound'
    assert cloud.capacity_history.samples('sim-00001') == []
    with pytest.raises(InvalidValue):
        cloud.capacity_history.samples(start=T0, end=T0 - datetime.timedelta(seconds=1))


def test_the_monitor_samples_the_hosts_its_worker_drives(launched):
    cloud, worker, _owner, _ids = launched(hosts=2, cpus=4, memory_mib=2048, count=3)
    worker.monitor.run_round()
    samples = cloud.capacity_history.samples()
    assert [(s.vcpu_used, s.instance_count, s.host_count) for s in samples] == [(3, 3, 2)]
    worker.monitor.run_round()                                  # the same interval
    assert len(cloud.capacity_history.samples()) == 1


def test_a_refused_launch_is_kept_with_each_hosts_reason(pool):
    cloud, owner, image_id = pool
    cloud.hosts.set_enabled('sim-00002', False)
    with pytest.raises(CapacityError) as refused:
        cloud.instances.run(owner, LaunchRequest(image_id, 5, 5, 'm1.small'))
    (failure,) = cloud.placement_failures.recent()
    assert (failure.owner, failure.instance_type, failure.count, failure.reason) == (
        owner, 'm1.small', 5, refused.value.message)
    assert failure.host_reasons['sim-00002'] == 'disabled'
    assert failure.host_reasons['sim-00001'].startswith('full: 4 of the instances counted here, then 0 vCPU')
    assert 'sim-0000' not in failure.reason                    # the tenant's message names no host
    cloud.instances.run(owner, LaunchRequest(image_id, 1, 1, 'm1.small'))      # a success records no failure
    assert len(cloud.placement_failures.recent()) == 1


def test_placement_failures_come_newest_first_and_are_bounded(pool):
    cloud, owner, _image_id = pool
    clock = Clock()
    failures = PlacementFailures(cloud.db, clock)
    for count in (1, 2, 3):
        failures.record(owner, 'm1.small', count, 'reservoir-1a', CapacityError('InsufficientInstanceCapacity', 'x'))
        clock.advance(1)
    assert [f.count for f in failures.recent()] == [3, 2, 1]
    assert [f.count for f in failures.recent(2)] == [3, 2]
    for bad in (0, 1001):
        with pytest.raises(InvalidValue):
            failures.recent(bad)


def test_launch_history_counts_launches_and_both_kinds_of_failure_per_bucket(pool):
    cloud, owner, image_id = pool
    launched = cloud.instances.run(owner, LaunchRequest(image_id, 2, 2, 'm1.small'))
    with pytest.raises(CapacityError):
        cloud.instances.run(owner, LaunchRequest(image_id, 10, 10, 'm1.small'))
    with cloud.db.write() as session:                            # a deploy that failed for good
        row = session.get(InstanceRow, launched[0].instance_id)
        transition(session, row, Event.DEPLOY_FAILED, reason='Server.InternalError: broken', reason_code='x')
    buckets = cloud.launch_history.buckets(bucket_seconds=60)
    assert (buckets[-1].launched, buckets[-1].placement_failed, buckets[-1].deploy_failed, buckets[-1].failed) == (
        2, 10, 1, 11)
    assert len(buckets) == 86400 // 60 + 1 and sum(b.launched for b in buckets) == 2


def test_launch_history_buckets_are_aligned_and_continuous(pool):
    cloud, owner, _image_id = pool
    clock = Clock(T0 + datetime.timedelta(seconds=500))
    history = LaunchHistory(cloud.db, 3600, clock)
    with cloud.db.write() as session:
        for seconds, count in ((10, 1), (20, 2), (320, 4)):
            session.add(LaunchEvent(time=T0 + datetime.timedelta(seconds=seconds), owner=owner, kind='launched',
                                    count=count))
    buckets = history.buckets(300, start=T0 + datetime.timedelta(seconds=5))
    assert [(b.time, b.launched) for b in buckets] == [(T0, 3), (T0 + datetime.timedelta(seconds=300), 4)]
    for bad in ({'bucket_seconds': 59}, {'bucket_seconds': 3601},
                {'bucket_seconds': 300, 'start': clock.now + datetime.timedelta(seconds=1)}):
        with pytest.raises(InvalidValue):
            history.buckets(**bad)
    with pytest.raises(InvalidValue):
        LaunchHistory(cloud.db, 10 ** 9, clock).buckets(60, start=T0 - datetime.timedelta(days=30))
