"""Start the servers a benchmark compares: Reservoir (the project's own command) and moto's server."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGION = 'reservoir-1'
REPOSITORY = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'server exited with {process.returncode}')
        with socket.socket() as probe:
            if probe.connect_ex(('127.0.0.1', port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError('server did not start listening')


def reservoir_command(*arguments):
    return [sys.executable, '-m', 'backend.cli', *arguments]


class Reservoir:
    """A Reservoir server in a temporary state directory, with one user."""

    def __init__(self, extra_env=None, processes=1, threads=None):
        self.home = Path(tempfile.mkdtemp(prefix='reservoir-bench-'))
        # A benchmark's account launches thousands of instances: quotas sized for load, not tenants.
        self.env = dict(os.environ, RESERVOIR_HOME=str(self.home), RESERVOIR_COMPUTE_RATE_LIMITS='false',
                        RESERVOIR_QUOTAS_INSTANCES='1000000', RESERVOIR_QUOTAS_VCPUS='1000000',
                        **(extra_env or {}))
        self.port = free_port()
        self.endpoint = f'http://127.0.0.1:{self.port}'
        self.processes = processes
        self.threads = threads
        self.region = REGION
        self.process = None

    def admin(self, *arguments):
        result = subprocess.run(reservoir_command(*arguments), env=self.env, check=True, capture_output=True,
                                text=True, cwd=REPOSITORY)
        return result.stdout

    def start(self):
        user = json.loads(self.admin('user', 'create', 'bench', '--json'))
        self.credentials = (user['access_key_id'], user['secret_access_key'])
        self.log = open(self.home / 'server.log', 'w')
        arguments = ['serve', '--listen', f'127.0.0.1:{self.port}', '--processes', str(self.processes)]
        if self.threads:
            arguments += ['--threads', str(self.threads)]
        self.process = subprocess.Popen(reservoir_command(*arguments), env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=REPOSITORY)
        wait_for_port(self.port, self.process)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Moto:
    """moto's standalone server, the reference the brief measures against."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f'http://127.0.0.1:{self.port}'
        self.credentials = ('testing', 'testing')
        self.region = 'us-east-1'   # moto knows only AWS's regions
        self.process = None

    def start(self):
        self.process = subprocess.Popen([sys.executable, '-m', 'moto.server', '-p', str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
