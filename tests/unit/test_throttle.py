import pytest

from ec2api.errors import EC2Error
from ec2api.throttle import Throttle


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_burst_then_refill_per_account_and_kind():
    clock = Clock()
    throttle = Throttle(describe=(3, 1), mutate=(1, 0.5), clock=clock)
    for _ in range(3):
        throttle.check('111111111111', 'DescribeInstances')
    with pytest.raises(EC2Error) as raised:
        throttle.check('111111111111', 'DescribeInstances')
    assert raised.value.code == 'RequestLimitExceeded' and raised.value.status == 503
    throttle.check('222222222222', 'DescribeInstances')   # another account has its own bucket
    throttle.check('111111111111', 'RunInstances')        # mutations have their own bucket
    with pytest.raises(EC2Error):
        throttle.check('111111111111', 'TerminateInstances')
    clock.now = 2.0
    throttle.check('111111111111', 'TerminateInstances')
    throttle.check('111111111111', 'DescribeInstances')
