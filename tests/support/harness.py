"""A whole cloud in one process for the action tests: real back-end on a temporary home, simulated
hosts, a tiny image, and real boto3 clients whose requests go to the Flask app in-process (signed,
parsed and raised exactly as over HTTP). The worker runs only when a test calls `settle()`, so every
state a test sees is one it caused.
"""
import subprocess
import urllib.parse

import boto3
import botocore.config
import botocore.exceptions
from botocore.awsrequest import AWSResponse

from backend.cloud import Cloud
from backend.config import load_config
from backend.worker import Worker
from ec2api.app import create_app

ENDPOINT = 'http://localhost'


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, **_kwargs):
        yield self.data


class CloudUnderTest:
    def __init__(self, home, hosts=2, cpus=4, memory_mib=2048):
        self.cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(home), 'RESERVOIR_COMPUTE_RATE_LIMITS': 'false'}))
        self.web = create_app(self.cloud).test_client()
        self.cloud.hosts.add_simulated(hosts, cpus=cpus, memory_mib=memory_mib)
        self.worker = Worker(self.cloud)
        self.worker.claim_hosts()
        self.users = {}
        disk = home / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        self.image_id = self.cloud.images.register_file(disk, 'tiny', self.account('alice'), public=True).image_id

    def account(self, name):
        if name not in self.users:
            self.users[name] = self.cloud.users.create(name)
        return self.users[name].account_id

    def client(self, name):
        """A boto3 EC2 client of user `name` (created on first use), talking to the app in-process."""
        self.account(name)
        user = self.users[name]
        client = boto3.client('ec2', endpoint_url=ENDPOINT, region_name=self.cloud.config.region,
                              aws_access_key_id=user.access_key_id,
                              aws_secret_access_key=user.secret_access_key,
                              config=botocore.config.Config(retries={'max_attempts': 1}))
        client.meta.events.register('before-send.ec2', self._send)
        return client

    def settle(self):
        """Let the worker carry out everything that is due (deploys, stops, reboots, destroys)."""
        while self.worker.dispatch(wait=True):
            pass

    def _send(self, request, **_kwargs):
        url = urllib.parse.urlsplit(request.url)
        headers = {name: value.decode() if isinstance(value, bytes) else value
                   for name, value in request.headers.items()}
        response = self.web.open(url.path or '/', method=request.method, query_string=url.query,
                                 headers=headers, data=request.body)
        return AWSResponse(request.url, response.status_code, dict(response.headers), _Body(response.get_data()))

    def close(self):
        self.worker.stop()
        self.cloud.close()
