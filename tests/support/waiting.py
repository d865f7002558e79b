"""Polling a live server until something holds, as client scripts do."""
import time


def wait_for(condition, timeout=60):
    """Call `condition` until it is true; fail the test once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'condition not met in time'
        time.sleep(0.3)
