"""Fixtures shared by the whole suite.

`cloud_server` is a real `reservoir serve` process with users alice and bob, for tests that drive
it through EC2 client programs over HTTP. It lasts for the whole run of one pytest process, so
each pytest-xdist worker gets a server, state directory and port of its own.
"""
import subprocess

import pytest

from tests.support.server import REGION, LiveServer

LOG_SECTION = 'reservoir server log'


class CloudServer:
    """What a client test needs to know about the live server."""

    region = REGION
    host = '127.0.0.1'

    def __init__(self, live):
        self._live = live
        self.port = live.port
        self.endpoint = live.endpoint
        self.home = live.home
        # name -> {'access_key_id', 'secret_access_key', 'account_id', 'name'}
        self.users = live.users

    def admin(self, *arguments):
        """Run `reservoir ARGUMENTS` against this server's state directory; return its stdout."""
        return self._live.admin(*arguments)

    def boto3_client(self, user='alice', **overrides):
        """A boto3 EC2 client for `user`; `secret=` signs with another secret."""
        return self._live.client(user, **overrides)

    def log(self):
        return self._live.log()


@pytest.fixture(scope='session')
def cloud_server(tmp_path_factory):
    live = LiveServer(home=tmp_path_factory.mktemp('reservoir-home'), worker=False)
    for name in ('alice', 'bob'):
        live.create_user(name)
    live.start()
    try:
        yield CloudServer(live)
    finally:
        live.stop()


@pytest.fixture(scope='session')
def public_image(cloud_server, tmp_path_factory):
    """The id of a small public machine image owned by alice."""
    disk = tmp_path_factory.mktemp('image') / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    return cloud_server.admin('image', 'register', str(disk), '--name', 'tiny-public', '--public',
                              '--owner', 'alice').strip()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's log to the report of a failed test that used the live server."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, 'funcargs', {}).get('cloud_server')
    if report.failed and server is not None:
        report.sections.append((LOG_SECTION, server.log()))
