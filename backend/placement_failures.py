"""The scheduler's refusals of launches, kept for administrators: who asked for what, where, and
why every host said no (the tenant's message only counts reasons by kind, never names a host)."""
import dataclasses
import datetime
import json

from sqlalchemy import delete, select

from .errors import InvalidValue
from .models import PlacementFailure, utcnow

MAX_RESULTS = 1000


@dataclasses.dataclass(frozen=True)
class Failure:
    time: datetime.datetime
    owner: str
    instance_type: str
    count: int                 # instances that could not be placed (MinCount)
    zone: str | None
    reason: str                # the tenant's summary
    host_reasons: dict         # {host name: why not}, when the scheduler gave them


def prune(session, horizon):
    session.execute(delete(PlacementFailure).where(PlacementFailure.time < horizon))


class PlacementFailures:
    def __init__(self, db, clock=utcnow):
        self.db = db
        self.clock = clock

    def record(self, owner, instance_type, count, zone, refusal):
        """Keep a refused launch; `refusal` is the CapacityError, with `rejections` {host: why} when
        the scheduler gave them. Its own transaction: the launch's was rolled back."""
        host_reasons = getattr(refusal, 'rejections', None)
        with self.db.write() as session:
            session.add(PlacementFailure(time=self.clock(), owner=owner, instance_type=instance_type, count=count,
                                         zone=zone or getattr(refusal, 'zone', None), reason=refusal.message,
                                         host_reasons=json.dumps(host_reasons) if host_reasons else None))

    def recent(self, max_results=50):
        """Failures, the newest first."""
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidValue(f'MaxResults must be between 1 and {MAX_RESULTS}')
        with self.db.read() as session:
            rows = session.scalars(select(PlacementFailure).order_by(PlacementFailure.time.desc(),
                                                                     PlacementFailure.id.desc())
                                   .limit(max_results)).all()
        return [Failure(row.time, row.owner, row.instance_type, row.count, row.zone, row.reason,
                        json.loads(row.host_reasons or '{}')) for row in rows]
