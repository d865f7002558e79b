"""The instance flow as a boto3 user lives it: a real HTTP server, the worker running in the
background as `reservoir serve` runs it, simulated hosts, and waiters doing the waiting."""
import base64
import subprocess
import threading

import boto3
import botocore.config
import botocore.exceptions
import pytest
from werkzeug.serving import make_server

from backend.cloud import Cloud
from backend.config import load_config
from ec2api.app import create_app
from tests.support.client_errors import error_code

WAIT = {'Delay': 1, 'MaxAttempts': 60}
USER_DATA = '#!/bin/sh\necho "hello from user data"\n'


class LiveCloud:
    def __init__(self, home, hosts, cpus):
        self.cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(home), 'RESERVOIR_COMPUTE_RATE_LIMITS': 'false',
                                             'RESERVOIR_COMPUTE_POLL_SECONDS': '0.2'}))
        self.cloud.hosts.add_simulated(hosts, cpus=cpus, memory_mib=cpus * 512)
        self.users = {name: self.cloud.users.create(name) for name in ('alice', 'bob')}
        disk = home / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        self.image_id = self.cloud.images.register_file(disk, 'tiny', self.users['alice'].account_id,
                                                        public=True).image_id
        self.cloud.start_worker()
        self.server = make_server('127.0.0.1', 0, create_app(self.cloud), threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client(self, name):
        user = self.users[name]
        return boto3.client('ec2', endpoint_url=f'http://127.0.0.1:{self.server.server_port}',
                            region_name=self.cloud.config.region, aws_access_key_id=user.access_key_id,
                            aws_secret_access_key=user.secret_access_key,
                            config=botocore.config.Config(retries={'max_attempts': 1}))

    def close(self):
        self.server.shutdown()
        self.thread.join()
        self.cloud.close()


@pytest.fixture
def live(tmp_path):
    cloud = LiveCloud(tmp_path, hosts=3, cpus=4)
    yield cloud
    cloud.close()


def instances(ec2, **kwargs):
    return {instance['InstanceId']: instance for page in ec2.get_paginator('describe_instances').paginate(**kwargs)
            for reservation in page['Reservations'] for instance in reservation['Instances']}


def test_the_instance_flow_from_launch_to_termination(live):
    ec2 = live.client('alice')
    ec2.create_key_pair(KeyName='laptop')
    launched = ec2.run_instances(
        ImageId=live.image_id, MinCount=2, MaxCount=2, KeyName='laptop', UserData=USER_DATA,
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'app', 'Value': 'shop-web'}]}])
    ids = [instance['InstanceId'] for instance in launched['Instances']]
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=WAIT)

    # Filters: by state, by tag, by wildcard.
    running = instances(ec2, Filters=[{'Name': 'instance-state-name', 'Values': ['running']}])
    assert set(running) == set(ids)
    assert all(i['KeyName'] == 'laptop' for i in running.values())
    assert set(instances(ec2, Filters=[{'Name': 'tag:app', 'Values': ['shop-web']}])) == set(ids)
    assert set(instances(ec2, Filters=[{'Name': 'tag:app', 'Values': ['shop-*']}])) == set(ids)
    assert instances(ec2, Filters=[{'Name': 'tag:app', 'Values': ['blog-*']}]) == {}

    # Paging: MaxResults=5 over eight instances, NextToken followed to the end, every id once.
    more = [i['InstanceId'] for i in ec2.run_instances(ImageId=live.image_id, MinCount=6, MaxCount=6)['Instances']]
    first_page = ec2.describe_instances(MaxResults=5)
    assert sum(len(r['Instances']) for r in first_page['Reservations']) == 5
    seen, token = [], None
    while True:
        page = ec2.describe_instances(MaxResults=5, **({'NextToken': token} if token else {}))
        seen += [i['InstanceId'] for r in page['Reservations'] for i in r['Instances']]
        token = page.get('NextToken')
        if not token:
            break
    assert sorted(seen) == sorted(ids + more)

    # Tags.
    ec2.create_tags(Resources=ids, Tags=[{'Key': 'Name', 'Value': 'web'}, {'Key': 'tier', 'Value': 'front'}])
    ec2.delete_tags(Resources=[ids[1]], Tags=[{'Key': 'tier'}])
    described = ec2.describe_tags(Filters=[{'Name': 'resource-id', 'Values': ids}])['Tags']
    assert sorted((t['ResourceId'], t['Key']) for t in described) == sorted(
        [(ids[0], 'Name'), (ids[0], 'app'), (ids[0], 'tier'), (ids[1], 'Name'), (ids[1], 'app')])

    # Elastic IPs, VPC style then classic style.
    address = ec2.allocate_address(Domain='vpc')
    association_id = ec2.associate_address(AllocationId=address['AllocationId'], InstanceId=ids[0])['AssociationId']
    assert instances(ec2, InstanceIds=[ids[0]])[ids[0]]['PublicIpAddress'] == address['PublicIp']
    ec2.disassociate_address(AssociationId=association_id)
    assert 'PublicIpAddress' not in instances(ec2, InstanceIds=[ids[0]])[ids[0]]
    ec2.release_address(AllocationId=address['AllocationId'])
    classic_ip = ec2.allocate_address(Domain='standard')['PublicIp']
    ec2.associate_address(PublicIp=classic_ip, InstanceId=ids[1])
    assert instances(ec2, InstanceIds=[ids[1]])[ids[1]]['PublicIpAddress'] == classic_ip
    assert [a['InstanceId'] for a in ec2.describe_addresses(
        Filters=[{'Name': 'instance-id', 'Values': [ids[1]]}])['Addresses']] == [ids[1]]
    ec2.disassociate_address(PublicIp=classic_ip)
    ec2.release_address(PublicIp=classic_ip)
    assert ec2.describe_addresses()['Addresses'] == []

    # Stop, start, reboot.
    ec2.stop_instances(InstanceIds=[ids[0]])
    ec2.get_waiter('instance_stopped').wait(InstanceIds=[ids[0]], WaiterConfig=WAIT)
    ec2.start_instances(InstanceIds=[ids[0]])
    ec2.get_waiter('instance_running').wait(InstanceIds=[ids[0]], WaiterConfig=WAIT)
    ec2.reboot_instances(InstanceIds=[ids[0]])
    ec2.get_waiter('instance_running').wait(InstanceIds=[ids[0]], WaiterConfig=WAIT)

    # Console output (decoded by botocore) and user data as stored.
    assert ids[0] in ec2.get_console_output(InstanceId=ids[0])['Output']
    user_data = ec2.describe_instance_attribute(InstanceId=ids[1], Attribute='userData')['UserData']['Value']
    assert base64.b64decode(user_data).decode() == USER_DATA

    # Termination: listed as terminated afterwards.
    ec2.terminate_instances(InstanceIds=ids + more)
    ec2.get_waiter('instance_terminated').wait(InstanceIds=ids, WaiterConfig=WAIT)
    assert {i['State']['Name'] for i in instances(ec2, InstanceIds=ids).values()} == {'terminated'}


def test_another_account_cannot_see_or_touch_them(live):
    alice, bob = live.client('alice'), live.client('bob')
    (instance_id,) = [i['InstanceId'] for i in alice.run_instances(
        ImageId=live.image_id, MinCount=1, MaxCount=1)['Instances']]
    address = alice.allocate_address()
    assert instances(bob) == {}
    assert bob.describe_addresses()['Addresses'] == []
    assert error_code(bob.describe_instances, InstanceIds=[instance_id]) == 'InvalidInstanceID.NotFound'
    assert error_code(bob.terminate_instances, InstanceIds=[instance_id]) == 'InvalidInstanceID.NotFound'
    assert error_code(bob.release_address, AllocationId=address['AllocationId']) == 'InvalidAllocationID.NotFound'
    assert error_code(bob.disassociate_address, PublicIp=address['PublicIp']) == 'InvalidAddress.NotFound'
    alice.get_waiter('instance_running').wait(InstanceIds=[instance_id], WaiterConfig=WAIT)


def test_refusals_clients_rely_on(live):
    ec2 = live.client('alice')
    assert error_code(ec2.describe_instances, Filters=[{'Name': 'no-such-filter', 'Values': ['x']}]) == \
        'InvalidParameterValue'
    assert error_code(ec2.describe_instances, InstanceIds=['i-123']) == 'InvalidInstanceID.Malformed'

    first = ec2.run_instances(ImageId=live.image_id, MinCount=1, MaxCount=1, ClientToken='launch-1')
    again = ec2.run_instances(ImageId=live.image_id, MinCount=1, MaxCount=1, ClientToken='launch-1')
    assert again['ReservationId'] == first['ReservationId']
    assert error_code(ec2.run_instances, ImageId=live.image_id, MinCount=1, MaxCount=1, InstanceType='t2.micro',
                      ClientToken='launch-1') == 'IdempotentParameterMismatch'

    # Three hosts of four CPUs hold twelve m1.small; one is taken already.
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.run_instances(ImageId=live.image_id, MinCount=12, MaxCount=12)
    assert raised.value.response['Error']['Code'] == 'InsufficientInstanceCapacity'
    ec2.run_instances(ImageId=live.image_id, MinCount=11, MaxCount=11)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        ec2.run_instances(ImageId=live.image_id, MinCount=1, MaxCount=1)
    error = raised.value.response['Error']
    assert error['Code'] == 'InsufficientInstanceCapacity'
    assert 'not enough free cpu (3)' in error['Message'] and 'sim-0000' not in error['Message']
