"""Fixtures shared by the whole suite.

`cloud_server` is a real `reservoir serve` process with users alice and bob, for tests that drive
it through EC2 client programs over HTTP. It lasts for the whole run of one pytest process, so
each pytest-xdist worker gets a server, state directory and port of its own.

`compute_server` is another such server that also runs its worker, on simulated hosts, with a
public image registered: instances launched there boot. Each test takes an account of its own
from it (`new_user`), so what it lists is only what it launched.
"""
import itertools
import subprocess

import pytest
from hypothesis import settings

# Property tests check behaviour, not speed: on a loaded 2-core machine an example may take
# longer than hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile('reservoir', deadline=None)
settings.load_profile('reservoir')

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

    def stacks(self):
        return self._live.stacks()


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


class ComputeServer(CloudServer):
    """A live server whose instances boot on simulated hosts, and the image to launch there."""

    def __init__(self, live, image_id):
        super().__init__(live)
        self.image_id = image_id
        self._numbers = itertools.count(1)

    def new_user(self, prefix='user'):
        """Create an account no other test uses; return its name (a key of `users`)."""
        name = f'{prefix}-{next(self._numbers)}'
        self._live.create_user(name)
        return name


@pytest.fixture(scope='session')
def compute_server(tmp_path_factory):
    home = tmp_path_factory.mktemp('reservoir-compute-home')
    live = LiveServer(home=home, worker=True)
    # Room for every flow test of one pytest process at once, even if some fail to clean up.
    live.admin('host', 'add', '--simulated', '--count', '4', '--cpus', '64', '--memory', '32768')
    live.create_user('owner')
    disk = home / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    image_id = live.admin('image', 'register', str(disk), '--name', 'tiny-bootable', '--public',
                          '--owner', 'owner').strip()
    live.start()
    try:
        yield ComputeServer(live, image_id)
    finally:
        live.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's log to the report of a failed test that used the live server."""
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, 'funcargs', {})
    server = funcargs.get('cloud_server') or funcargs.get('compute_server')
    if report.failed and server is not None:
        report.sections.append((LOG_SECTION, server.log()))
