"""Instance launches and failures over time, for administrators' plots.

A launch is counted when RunInstances places its instances (in the launch's own transaction), a
deploy failure when an instance becomes `failed` (in `transition`), a placement failure when the
scheduler refuses a launch (`placement_failures`); each row is a count at one moment, so a history
outlives the instances themselves, which are forgotten an hour after they end.
"""
import collections
import dataclasses
import datetime

from sqlalchemy import delete, select

from .errors import InvalidValue
from .models import LaunchEvent, PlacementFailure, utcnow

LAUNCHED = 'launched'
DEPLOY_FAILED = 'deploy-failed'
MIN_BUCKET_SECONDS = 60
MAX_BUCKETS = 10_000
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def record(session, owner, kind, count):
    """Count `count` instances of `kind` now, in the caller's transaction."""
    session.execute(LaunchEvent.__table__.insert(), [{'time': utcnow(), 'owner': owner, 'kind': kind,
                                                      'count': count}])


def prune(session, horizon):
    session.execute(delete(LaunchEvent).where(LaunchEvent.time < horizon))


def as_utc(moment, name):
    """`moment` in UTC, or None; InvalidValue for a time UTC cannot hold (year 1 east of Greenwich)."""
    if moment is None:
        return None
    try:
        return moment.astimezone(datetime.timezone.utc)
    except OverflowError:
        raise InvalidValue(f'{name} is outside the calendar') from None


def bucket_start(moment, seconds):
    """The start of the interval of `seconds` (counted from the epoch) that holds `moment`."""
    elapsed = (moment - _EPOCH).total_seconds()
    return _EPOCH + datetime.timedelta(seconds=elapsed // seconds * seconds)


@dataclasses.dataclass(frozen=True)
class Bucket:
    """Instances launched and failed in the interval that starts at `time`."""
    time: datetime.datetime
    launched: int
    placement_failed: int
    deploy_failed: int

    @property
    def failed(self):
        return self.placement_failed + self.deploy_failed


class LaunchHistory:
    def __init__(self, db, history_seconds, clock=utcnow):
        self.db = db
        self.history_seconds = history_seconds
        self.clock = clock

    def buckets(self, bucket_seconds=300, start=None):
        """A Bucket per interval from `start` (default: the kept window) to now, empty ones too,
        oldest first."""
        now = self.clock()
        start = as_utc(start, 'StartTime') or now - datetime.timedelta(seconds=self.history_seconds)
        if not MIN_BUCKET_SECONDS <= bucket_seconds <= self.history_seconds:
            raise InvalidValue(f'BucketSeconds must be between {MIN_BUCKET_SECONDS} and {int(self.history_seconds)}')
        if start > now:
            raise InvalidValue('StartTime must not be in the future')
        first = bucket_start(start, bucket_seconds)
        count = int((now - first).total_seconds() // bucket_seconds) + 1
        if count > MAX_BUCKETS:
            raise InvalidValue(f'At most {MAX_BUCKETS} buckets: use a later StartTime or larger BucketSeconds')
        totals = self._totals(first, bucket_seconds)
        return [Bucket(moment, totals[moment][LAUNCHED], totals[moment]['placement'], totals[moment][DEPLOY_FAILED])
                for moment in (first + datetime.timedelta(seconds=bucket_seconds * i) for i in range(count))]

    def _totals(self, first, bucket_seconds):
        totals = collections.defaultdict(collections.Counter)
        with self.db.read() as session:
            events = session.execute(select(LaunchEvent.time, LaunchEvent.kind, LaunchEvent.count)
                                     .where(LaunchEvent.time >= first)).all()
            refusals = session.execute(select(PlacementFailure.time, PlacementFailure.count)
                                       .where(PlacementFailure.time >= first)).all()
        for moment, kind, count in events:
            totals[bucket_start(moment, bucket_seconds)][kind] += count
        for moment, count in refusals:
            totals[bucket_start(moment, bucket_seconds)]['placement'] += count
        return totals
