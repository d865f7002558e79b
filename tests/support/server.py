"""A live Reservoir server for functional tests: its own state directory, users, a free port."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

REGION = 'reservoir-1'
# Tests that launch hundreds of instances in one account are not testing quotas; the quota tests set
# their own.
LOAD_TEST_QUOTAS = {'RESERVOIR_QUOTAS_INSTANCES': '100000', 'RESERVOIR_QUOTAS_VCPUS': '100000'}


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class LiveServer:
    def __init__(self, home=None, extra_env=None, processes=1, worker=True):
        self.home = Path(home or tempfile.mkdtemp(prefix='reservoir-test-'))
        self.env = dict(os.environ, RESERVOIR_HOME=str(self.home), RESERVOIR_COMPUTE_RATE_LIMITS='false',
                        RESERVOIR_COMPUTE_POLL_SECONDS='0.1', RESERVOIR_COMPUTE_MONITOR_SECONDS='1',
                        **LOAD_TEST_QUOTAS)
        self.env.update(extra_env or {})
        self.port = free_port()
        self.endpoint = f'http://127.0.0.1:{self.port}'
        self.processes = processes
        self.worker = worker
        self.users = {}
        self.process = None

    def admin(self, *arguments, check=True):
        result = subprocess.run([sys.executable, '-m', 'backend.cli', *arguments], env=self.env,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f'reservoir {" ".join(arguments)} failed: {result.stderr}')
        return result.stdout

    def create_user(self, name, admin=False):
        self.users[name] = json.loads(self.admin('user', 'create', name, '--json', *(['--admin'] if admin else [])))
        return self.users[name]

    def start(self):
        self.log_path = self.home / 'server.log'
        command = [sys.executable, '-m', 'backend.cli', 'serve', '--listen', f'127.0.0.1:{self.port}',
                   '--processes', str(self.processes)]
        if not self.worker:
            command.append('--no-worker')
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f'server exited ({self.process.returncode}):\n{self.log()}')
            with socket.socket() as probe:
                if probe.connect_ex(('127.0.0.1', self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError(f'server did not listen in time:\n{self.log()}')

    def kill(self):
        """SIGKILL the whole server (master and workers), as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def stacks(self):
        """The server's log after its worker processes printed every thread's stack (SIGUSR1), one
        after the other: for a failure report."""
        if self.process and self.process.poll() is None:
            pid = self.process.pid
            children = Path(f'/proc/{pid}/task/{pid}/children').read_text().split()
            for child in children:
                os.kill(int(child), signal.SIGUSR1)
                time.sleep(1)
        try:
            return self.log_path.read_text(errors='replace')[-30000:]
        except OSError:
            return ''

    def log(self):
        try:
            return self.log_path.read_text(errors='replace')[-5000:]
        except OSError:
            return ''

    def admin_client(self, user, **config):
        """A boto3 client of the administrators' actions (service reservoir-admin), signed as `user`;
        `config`: botocore Config options (parameter_validation=False sends what the model forbids)."""
        from tests.support.admin_api import admin_client
        credentials = self.users[user]
        return admin_client(self.endpoint, credentials['access_key_id'], credentials['secret_access_key'], REGION,
                            **config)

    def client(self, user='alice', **overrides):
        credentials = self.users[user]
        return boto3.client('ec2', endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=credentials['access_key_id'],
                            aws_secret_access_key=overrides.pop('secret', credentials['secret_access_key']),
                            config=Config(retries={'max_attempts': 2}), **overrides)


def simulated_cloud(home, users, hosts=2, extra_env=None, cpus=16, memory_mib=16384, start=True):
    """A server with `hosts` simulated hosts of `cpus` and `memory_mib` each, the `users`, and a tiny
    public image of the first user's (`.image_id`), started unless `start` is false; stop it when done."""
    live = LiveServer(home=home, extra_env=extra_env)
    live.admin('host', 'add', '--simulated', '--count', str(hosts), '--cpus', str(cpus), '--memory', str(memory_mib))
    for name in users:
        live.create_user(name)
    disk = Path(home) / 'tiny.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    live.image_id = live.admin('image', 'register', str(disk), '--name', 'tiny', '--public',
                               '--owner', users[0]).strip()
    if start:
        live.start()
    return live
