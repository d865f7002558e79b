"""Capacity over time: what each host had used and free, sampled by the monitor, for administrators.

The monitor calls `sample` every round; at most once per `[monitor] sample_interval_seconds` it
writes one row per host it drives (one bulk insert) and deletes what is older than
`[monitor] history_seconds` (of this history, the placement failures and the launch counts). A
sample is stamped with the start of its interval, so the samples of hosts that several workers
drive line up and the cloud's totals are a plain sum per moment.
"""
import dataclasses
import datetime

from sqlalchemy import delete, func, select

from . import launch_history, placement_failures
from .errors import InvalidValue, NotFound
from .lifecycle import HOLDS_CAPACITY
from .models import CapacitySample, Host as HostRow, Instance as InstanceRow, utcnow


@dataclasses.dataclass(frozen=True)
class Sample:
    """One host's capacity at `time`, or the sum over the `host_count` hosts sampled then."""
    time: datetime.datetime
    vcpu_used: int
    vcpu_total: int
    memory_used_mib: int
    memory_total_mib: int
    instance_count: int
    host_count: int = 1


class CapacityHistory:
    def __init__(self, db, settings, clock=utcnow):
        """`settings`: the [monitor] settings."""
        self.db = db
        self.interval = settings.sample_interval_seconds
        self.window = datetime.timedelta(seconds=settings.history_seconds)
        self.clock = clock
        self._sampled = None        # the interval this process sampled last

    def sample(self, host_ids):
        """Sample the hosts `host_ids` if this interval has no sample yet; prune the window. Returns
        how many samples were written."""
        now = self.clock()
        moment = launch_history.bucket_start(now, self.interval)
        if moment == self._sampled:
            return 0
        with self.db.write() as session:
            rows = _samples_due(session, list(host_ids), moment)
            if rows:
                session.execute(CapacitySample.__table__.insert(), rows)
            self._prune(session, now - self.window)
        self._sampled = moment
        return len(rows)

    def _prune(self, session, horizon):
        session.execute(delete(CapacitySample).where(CapacitySample.time < horizon))
        placement_failures.prune(session, horizon)
        launch_history.prune(session, horizon)

    def samples(self, host_name=None, start=None, end=None):
        """Samples from `start` to `end` (default: the whole window), oldest first: one host's, or
        the cloud's totals per moment when no host is named."""
        start, end = launch_history.as_utc(start, 'StartTime'), launch_history.as_utc(end, 'EndTime')
        if start is not None and end is not None and start > end:
            raise InvalidValue('StartTime must not be after EndTime')
        with self.db.read() as session:
            if host_name is not None:
                return self._host_samples(session, host_name, start, end)
            query = select(CapacitySample.time, func.sum(CapacitySample.vcpu_used), func.sum(CapacitySample.vcpu_total),
                           func.sum(CapacitySample.memory_used_mib), func.sum(CapacitySample.memory_total_mib),
                           func.sum(CapacitySample.instance_count), func.count()).group_by(CapacitySample.time)
            rows = session.execute(_between(query, start, end).order_by(CapacitySample.time)).all()
        return [Sample(row[0], *(int(value) for value in row[1:])) for row in rows]

    def _host_samples(self, session, host_name, start, end):
        query = select(CapacitySample).where(CapacitySample.host_name == host_name)
        rows = session.scalars(_between(query, start, end).order_by(CapacitySample.time)).all()
        if not rows and session.scalar(select(HostRow.id).where(HostRow.name == host_name)) is None and \
                session.scalar(select(CapacitySample.id).where(CapacitySample.host_name == host_name).limit(1)) is None:
            raise NotFound('InvalidHost.NotFound', f"no host is named '{host_name}'")
        return [Sample(row.time, row.vcpu_used, row.vcpu_total, row.memory_used_mib, row.memory_total_mib,
                       row.instance_count) for row in rows]


def _samples_due(session, host_ids, moment):
    """Rows for the hosts not sampled at `moment` yet (a worker that restarted, or took over a host)."""
    if not host_ids:
        return []
    hosts = session.execute(select(HostRow.id, HostRow.name, HostRow.cpus, HostRow.used_cpus, HostRow.memory_mib,
                                   HostRow.used_memory_mib).where(HostRow.id.in_(host_ids))).all()
    done = set(session.scalars(select(CapacitySample.host_name).where(CapacitySample.time == moment)))
    counts = dict(session.execute(
        select(InstanceRow.host_id, func.count()).where(
            InstanceRow.host_id.in_(host_ids), InstanceRow.state.in_([state.value for state in HOLDS_CAPACITY]))
        .group_by(InstanceRow.host_id)).all())
    return [{'time': moment, 'host_name': host.name, 'vcpu_used': host.used_cpus, 'vcpu_total': host.cpus,
             'memory_used_mib': host.used_memory_mib, 'memory_total_mib': host.memory_mib,
             'instance_count': counts.get(host.id, 0)} for host in hosts if host.name not in done]


def _between(query, start, end):
    if start is not None:
        query = query.where(CapacitySample.time >= start)
    if end is not None:
        query = query.where(CapacitySample.time <= end)
    return query
