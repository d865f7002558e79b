"""The AWS CLI (v1) as a user runs it: `aws ec2 ...` subprocesses against a live server."""
import json
import os
import subprocess
import sys
from pathlib import Path

AWS = Path(sys.executable).with_name('aws')


class Cli:
    def __init__(self, server, user):
        credentials = server.users[user]
        self.server = server
        self.env = {
            'PATH': os.environ.get('PATH', '/usr/bin:/bin'),
            'HOME': str(server.home),
            'AWS_ACCESS_KEY_ID': credentials['access_key_id'],
            'AWS_SECRET_ACCESS_KEY': credentials['secret_access_key'],
            'AWS_DEFAULT_REGION': server.region,
            'AWS_CONFIG_FILE': os.devnull,
            'AWS_SHARED_CREDENTIALS_FILE': os.devnull,
            'AWS_MAX_ATTEMPTS': '1',
        }

    def run(self, *arguments):
        """`aws ec2 ARGUMENTS` must succeed; its JSON output, parsed ({} when it prints nothing)."""
        result = self._run(arguments)
        assert result.returncode == 0, f'aws ec2 {" ".join(arguments)}: {result.stderr}'
        return json.loads(result.stdout) if result.stdout.strip() else {}

    def instances(self, *arguments):
        """{id: instance} over every page the CLI fetched itself."""
        listed = self.run('describe-instances', *arguments)
        return {i['InstanceId']: i for r in listed['Reservations'] for i in r['Instances']}

    def fail(self, *arguments):
        """`aws ec2 ARGUMENTS` must fail; what it printed on stderr (the error code is in it)."""
        result = self._run(arguments)
        assert result.returncode != 0, f'aws ec2 {" ".join(arguments)} succeeded'
        return result.stderr

    def _run(self, arguments):
        try:
            return subprocess.run([str(AWS), 'ec2', *arguments, '--endpoint-url', self.server.endpoint,
                                   '--output', 'json'], env=self.env, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            # A stuck server is the likely cause: show what each of its threads was doing.
            raise AssertionError(f'aws ec2 {" ".join(arguments)} ran for 300 s; the server:\n'
                                 f'{self.server.stacks()}') from None
