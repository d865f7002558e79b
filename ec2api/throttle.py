"""Per-account request rate limits shaped like AWS's: token buckets, one per account and kind.

Describe* calls share a generous bucket, everything else a small one, as AWS throttles
RunInstances far sooner than DescribeInstances. A refused call is `RequestLimitExceeded`, which
every SDK retries with back-off. Buckets live in each API process.
"""
import threading
import time

from .errors import EC2Error


class TokenBucket:
    def __init__(self, burst, per_second, clock=time.monotonic):
        self.capacity = float(burst)
        self.rate = float(per_second)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()

    def take(self):
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Throttle:
    def __init__(self, describe, mutate, clock=time.monotonic):
        """`describe` and `mutate` are (burst, per_second) pairs."""
        self.limits = {'describe': describe, 'mutate': mutate}
        self.clock = clock
        self.buckets = {}
        self.lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings):
        if not settings.rate_limits:
            return None
        return cls(_pair(settings.rate_limit_describe), _pair(settings.rate_limit_mutate))

    def check(self, account_id, action):
        kind = 'describe' if action.startswith(('Describe', 'Get')) else 'mutate'
        with self.lock:
            bucket = self.buckets.get((account_id, kind))
            if bucket is None:
                bucket = self.buckets[(account_id, kind)] = TokenBucket(*self.limits[kind], clock=self.clock)
            allowed = bucket.take()
        if not allowed:
            raise EC2Error('RequestLimitExceeded', 'Request limit exceeded.')


def _pair(text):
    burst, per_second = (float(part) for part in text.split(','))
    return burst, per_second
