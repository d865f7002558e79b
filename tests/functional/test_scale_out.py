"""Scale-out on one PostgreSQL: two API processes (`reservoir serve --processes 2 --no-worker`) and
two `reservoir worker` processes, each worker limited to half the simulated hosts. About two
hundred instances launched through boto3 in concurrent calls all run, each deployed exactly once,
on hosts the two workers own without overlap; terminating them all gives every host's capacity
back."""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from backend.cloud import Cloud
from backend.config import load_config
from tests.support.postgres import fresh_database
from tests.support.server import LiveServer

pytestmark = [pytest.mark.postgres, pytest.mark.clients]

HOSTS = 8
CPUS = 32                   # per host: 256 t1.micro fit in all
MEMORY_MIB = 32 * 128
CALLS, PER_CALL = 8, 25     # 200 instances
WORKER_ID = re.compile(r'^worker (\S+) running$', re.MULTILINE)


class Workers:
    """`reservoir worker` processes with the server's environment."""

    def __init__(self, env, home, count):
        self.processes, self.logs = [], []
        for number in range(count):
            log_path = home / f'worker-{number}.log'
            with open(log_path, 'wb') as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, '-m', 'backend.cli', 'worker'], env=env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True))
            self.logs.append(log_path)

    def ids(self, timeout=60):
        """The worker ids each process printed once it was running."""
        deadline = time.monotonic() + timeout
        while True:
            found = [WORKER_ID.search(path.read_text(errors='replace')) for path in self.logs]
            if all(found):
                return [match.group(1) for match in found]
            for process in self.processes:
                assert process.poll() is None, f'a worker exited:\n{self.log()}'
            assert time.monotonic() < deadline, f'workers did not start:\n{self.log()}'
            time.sleep(0.2)

    def stop(self):
        """SIGTERM each worker; return their exit codes."""
        codes = []
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                codes.append(process.wait(60))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes.append(process.wait(30))
        return codes

    def log(self):
        return '\n'.join(path.read_text(errors='replace')[-3000:] for path in self.logs)


def wait_for(condition, timeout, describe):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, describe()
        time.sleep(0.5)


def states(ec2, ids):
    found = {}
    for start in range(0, len(ids), 100):
        for reservation in ec2.describe_instances(InstanceIds=ids[start:start + 100])['Reservations']:
            found.update({i['InstanceId']: i['State']['Name'] for i in reservation['Instances']})
    return found


def host_claims(engine):
    with engine.connect() as connection:
        return dict(connection.execute(text('SELECT id, claimed_by FROM hosts')).all())


@pytest.fixture
def database_url():
    with fresh_database() as url:
        yield url


def test_two_api_processes_and_two_workers_share_one_postgresql(tmp_path, database_url):
    server = LiveServer(tmp_path, processes=2, worker=False, extra_env={
        'RESERVOIR_DATABASE_URL': database_url,
        'RESERVOIR_COMPUTE_HOSTS_PER_WORKER': str(HOSTS // 2),
        'RESERVOIR_COMPUTE_POLL_SECONDS': '0.1'})
    disk = tmp_path / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    server.create_user('alice')
    server.admin('host', 'add', '--simulated', '--count', str(HOSTS), '--cpus', str(CPUS),
                 '--memory', str(MEMORY_MIB))
    with Cloud.open(load_config(server.env)) as cloud:
        image_id = cloud.images.register_file(disk, 'tiny', server.users['alice']['account_id'],
                                              public=True).image_id
    engine = create_engine(database_url)
    server.start()
    workers = Workers(server.env, tmp_path, 2)
    try:
        worker_ids = workers.ids()
        assert len(set(worker_ids)) == 2

        # Each worker claims half the hosts; together they own all of them, none twice.
        wait_for(lambda: set(host_claims(engine).values()) == set(worker_ids), 60,
                 lambda: f'claims: {host_claims(engine)}\n{workers.log()}')
        claims = host_claims(engine)
        owned = {worker: {host for host, owner in claims.items() if owner == worker} for worker in worker_ids}
        assert [len(hosts) for hosts in owned.values()] == [HOSTS // 2, HOSTS // 2]
        assert not owned[worker_ids[0]] & owned[worker_ids[1]]

        # Launch in concurrent calls, as several clients would; either API process may take each one.
        def launch(number):
            reply = server.client().run_instances(
                ImageId=image_id, MinCount=PER_CALL, MaxCount=PER_CALL, InstanceType='t1.micro',
                TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'batch', 'Value': str(number)}]}])
            return [instance['InstanceId'] for instance in reply['Instances']]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ids = sorted(sum(pool.map(launch, range(CALLS)), []))
        assert len(set(ids)) == CALLS * PER_CALL

        ec2 = server.client()
        wait_for(lambda: set(states(ec2, ids).values()) == {'running'}, 180,
                 lambda: f'not running: {sorted(set(states(ec2, ids).values()))}\n{workers.log()}\n{server.log()}')

        # Deployed exactly once each: one "started" line on every simulated console.
        for instance_id in ids:
            console = ec2.get_console_output(InstanceId=instance_id)['Output']   # botocore decoded the base64
            started = [line for line in console.splitlines() if 'started' in line]
            assert len(started) == 1 and f'domain {instance_id} started' in started[0], (instance_id, console)

        # Both workers did some of the work, each on its own hosts, and kept their hosts throughout.
        with engine.connect() as connection:
            placed = dict(connection.execute(text('SELECT instance_id, host_id FROM instances')).all())
        assert sorted(placed) == ids
        assert all(set(placed.values()) & hosts for hosts in owned.values())
        assert host_claims(engine) == claims

        # Terminate everything; the capacity comes back to zero on every host.
        for start in range(0, len(ids), 50):
            ec2.terminate_instances(InstanceIds=ids[start:start + 50])
        wait_for(lambda: set(states(ec2, ids).values()) == {'terminated'}, 180,
                 lambda: f'not terminated: {sorted(set(states(ec2, ids).values()))}\n{workers.log()}')
        hosts = json.loads(server.admin('host', 'list', '--json'))
        assert len(hosts) == HOSTS
        assert [(h['used_cpus'], h['used_memory_mib'], h['instances']) for h in hosts] == [(0, 0, 0)] * HOSTS
    finally:
        codes = workers.stop()
        server.stop()
        engine.dispose()
    assert codes == [0, 0], workers.log()
    # A worker that stops gives its hosts back.
    engine = create_engine(database_url)
    assert set(host_claims(engine).values()) == {None}
    engine.dispose()
