"""The instance flow with the AWS SDK for JavaScript v3: one node process (tests/clients/js/
interactive.mjs) holds an EC2Client and runs the calls, the SDK's waiters and its paginator as this
test asks, one JSON line each way."""
import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients

CLIENT_DIR = Path(__file__).resolve().parents[1] / 'clients' / 'js'
SCRIPT = CLIENT_DIR / 'interactive.mjs'
USER_DATA = '#!/bin/sh\necho "hello from the JS SDK"\n'


class JsClient:
    def __init__(self, server, user, log_path):
        node = shutil.which('node')
        if node is None or not (CLIENT_DIR / 'node_modules' / '@aws-sdk' / 'client-ec2').is_dir():
            pytest.fail('node and @aws-sdk/client-ec2 are needed: run `make install`')
        self.stderr = open(log_path, 'w+')
        self.process = subprocess.Popen([node, str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, cwd=CLIENT_DIR)
        credentials = server.users[user]
        self._send({'endpoint': server.endpoint, 'region': server.region,
                    'accessKeyId': credentials['access_key_id'],
                    'secretAccessKey': credentials['secret_access_key']})

    def _send(self, request):
        self.process.stdin.write(json.dumps(request) + '\n')
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            raise AssertionError(f'node exited ({self.process.wait(10)}): {self.stderr.read()}')
        answer = json.loads(line)
        assert answer['ok'], f"{request.get('command') or request.get('waiter')}: {answer['error']}"
        return answer['output']

    def call(self, command, **params):
        return self._send({'op': 'call', 'command': command, 'input': params})

    def wait(self, waiter, **params):
        assert self._send({'op': 'wait', 'waiter': waiter, 'input': params})['state'] == 'SUCCESS'

    def paginate(self, command, page_size=None, **params):
        request = {'op': 'paginate', 'command': command, 'input': params}
        if page_size is not None:
            request['pageSize'] = page_size
        return self._send(request)['pages']

    def instances(self, **params):
        # EC2 takes no MaxResults together with InstanceIds.
        pages = self.paginate('DescribeInstances', None if 'InstanceIds' in params else 5, **params)
        return {i['InstanceId']: i for page in pages for r in page['Reservations'] for i in r['Instances']}

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(30)
        finally:
            self.stderr.close()


@pytest.fixture
def js(compute_server, tmp_path):
    client = JsClient(compute_server, compute_server.new_user('js-sdk'), tmp_path / 'node.log')
    yield client
    client.close()


def test_the_instance_flow_with_the_js_sdk(js, compute_server):
    js.call('CreateKeyPair', KeyName='laptop')
    # The JS SDK sends UserData as given: the caller base64-encodes it.
    launched = js.call('RunInstances', ImageId=compute_server.image_id, MinCount=2, MaxCount=2,
                       InstanceType='t1.micro', KeyName='laptop',
                       UserData=base64.b64encode(USER_DATA.encode()).decode(),
                       TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'app', 'Value': 'shop-web'}]}])
    ids = sorted(instance['InstanceId'] for instance in launched['Instances'])
    assert len(ids) == 2
    js.wait('InstanceRunning', InstanceIds=ids)

    # Filters.
    running = js.instances(Filters=[{'Name': 'instance-state-name', 'Values': ['running']}])
    assert sorted(running) == ids
    assert {i['KeyName'] for i in running.values()} == {'laptop'}
    assert [i['Tags'] for i in running.values()] == [[{'Key': 'app', 'Value': 'shop-web'}]] * 2
    assert sorted(js.instances(Filters=[{'Name': 'instance-state-name', 'Values': ['running']},
                                        {'Name': 'tag:app', 'Values': ['shop-*']}])) == ids
    assert js.instances(Filters=[{'Name': 'tag:app', 'Values': ['blog-*']}]) == {}

    # Paging over eight instances: the SDK's paginator sends MaxResults=5 and follows NextToken.
    more = js.call('RunInstances', ImageId=compute_server.image_id, MinCount=6, MaxCount=6, InstanceType='t1.micro')
    everything = sorted(ids + [instance['InstanceId'] for instance in more['Instances']])
    pages = js.paginate('DescribeInstances', 5)
    per_page = [[i['InstanceId'] for r in page['Reservations'] for i in r['Instances']] for page in pages]
    assert [len(page) for page in per_page] == [5, 3]
    assert sorted(sum(per_page, [])) == everything
    assert 'NextToken' in pages[0] and not pages[-1].get('NextToken')

    # Tags.
    js.call('CreateTags', Resources=ids, Tags=[{'Key': 'Name', 'Value': 'web'}, {'Key': 'tier', 'Value': 'front'}])
    js.call('DeleteTags', Resources=[ids[1]], Tags=[{'Key': 'tier'}])
    described = js.call('DescribeTags', Filters=[{'Name': 'resource-id', 'Values': ids}])['Tags']
    assert sorted((t['ResourceId'], t['Key'], t['Value']) for t in described) == sorted([
        (ids[0], 'Name', 'web'), (ids[0], 'app', 'shop-web'), (ids[0], 'tier', 'front'),
        (ids[1], 'Name', 'web'), (ids[1], 'app', 'shop-web')])
    assert sorted(js.instances(Filters=[{'Name': 'tag:tier', 'Values': ['front']}])) == [ids[0]]

    # Elastic IPs: VPC style, then classic style.
    address = js.call('AllocateAddress', Domain='vpc')
    association = js.call('AssociateAddress', AllocationId=address['AllocationId'], InstanceId=ids[0])
    assert js.instances(InstanceIds=[ids[0]])[ids[0]]['PublicIpAddress'] == address['PublicIp']
    js.call('DisassociateAddress', AssociationId=association['AssociationId'])
    assert 'PublicIpAddress' not in js.instances(InstanceIds=[ids[0]])[ids[0]]
    js.call('ReleaseAddress', AllocationId=address['AllocationId'])
    classic = js.call('AllocateAddress')['PublicIp']
    js.call('AssociateAddress', PublicIp=classic, InstanceId=ids[1])
    assert [a['InstanceId'] for a in js.call('DescribeAddresses', PublicIps=[classic])['Addresses']] == [ids[1]]
    js.call('DisassociateAddress', PublicIp=classic)
    js.call('ReleaseAddress', PublicIp=classic)
    assert js.call('DescribeAddresses')['Addresses'] == []

    # Stop, start, reboot.
    js.call('StopInstances', InstanceIds=[ids[0]])
    js.wait('InstanceStopped', InstanceIds=[ids[0]])
    js.call('StartInstances', InstanceIds=[ids[0]])
    js.wait('InstanceRunning', InstanceIds=[ids[0]])
    js.call('RebootInstances', InstanceIds=[ids[0]])

    # Console output: the JS SDK hands back the base64 as sent.
    def console():
        return base64.b64decode(js.call('GetConsoleOutput', InstanceId=ids[0]).get('Output', '')).decode()
    wait_for(lambda: 'rebooted' in console())
    assert f'domain {ids[0]} started' in console()
    js.wait('InstanceRunning', InstanceIds=[ids[0]])
    user_data = js.call('DescribeInstanceAttribute', InstanceId=ids[1], Attribute='userData')['UserData']['Value']
    assert base64.b64decode(user_data).decode() == USER_DATA

    # Termination: the waiter needs them still listed, as terminated.
    terminating = js.call('TerminateInstances', InstanceIds=everything)['TerminatingInstances']
    assert sorted(change['InstanceId'] for change in terminating) == everything
    js.wait('InstanceTerminated', InstanceIds=everything)
    assert {i['State']['Name'] for i in js.instances(InstanceIds=everything).values()} == {'terminated'}
    assert js.instances(Filters=[{'Name': 'instance-state-name', 'Values': ['running']}]) == {}
