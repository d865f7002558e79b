"""The boto3 instance flow of test_instances_boto3, run unchanged against `reservoir serve` whose
database is PostgreSQL: the same launches, filters, pages, tags, addresses, lifecycle, refusals
and account isolation as on SQLite, through a real server process and its worker."""
import subprocess

import pytest

from backend.cloud import Cloud
from backend.config import load_config
from tests.support.postgres import fresh_database
from tests.support.server import LiveServer

from . import test_instances_boto3 as boto3_flow

pytestmark = [pytest.mark.postgres, pytest.mark.clients]


class PostgresCloud:
    """What the boto3 flow asks of its cloud: `client(name)` and `image_id`, here over PostgreSQL."""

    def __init__(self, home, database_url, hosts=3, cpus=4):
        self.server = LiveServer(home, extra_env={'RESERVOIR_DATABASE_URL': database_url})
        disk = home / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        # Prepared in this process (quicker than one `reservoir` command each), in the server's state.
        with Cloud.open(load_config(self.server.env)) as cloud:
            for name in ('alice', 'bob'):
                user = cloud.users.create(name)
                self.server.users[name] = {'name': name, 'account_id': user.account_id,
                                           'access_key_id': user.access_key_id,
                                           'secret_access_key': user.secret_access_key}
            cloud.hosts.add_simulated(hosts, cpus=cpus, memory_mib=cpus * 512)
            self.image_id = cloud.images.register_file(disk, 'tiny', self.server.users['alice']['account_id'],
                                                       public=True).image_id
        self.server.start()

    def client(self, name):
        return self.server.client(name)


@pytest.fixture
def live(tmp_path):
    with fresh_database() as url:
        cloud = PostgresCloud(tmp_path, url)
        try:
            yield cloud
            # The server really ran on PostgreSQL: it left no SQLite database behind.
            assert not (tmp_path / 'reservoir.db').exists()
        finally:
            cloud.server.stop()


@pytest.mark.parametrize('flow', [
    boto3_flow.test_the_instance_flow_from_launch_to_termination,
    boto3_flow.test_another_account_cannot_see_or_touch_them,
    boto3_flow.test_refusals_clients_rely_on,
], ids=lambda flow: flow.__name__.removeprefix('test_'))
def test_boto3_flow_on_postgres(live, flow):
    try:
        flow(live)
    except BaseException:
        print(live.server.log())
        raise
