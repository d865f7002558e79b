"""The instance flow with the AWS CLI (v1) as a user types it: `aws ec2 ...` subprocesses with
--endpoint-url and JSON output, its own waiters, pagination and base64 handling, against a server
whose worker boots instances on simulated hosts."""
import base64

import pytest

from tests.support.awscli import Cli
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients

USER_DATA = '#!/bin/sh\necho "hello from the aws cli"\n'


def test_the_instance_flow_with_the_aws_cli(compute_server, tmp_path):
    aws = Cli(compute_server, compute_server.new_user('awscli'))
    aws.run('create-key-pair', '--key-name', 'laptop')
    user_data_file = tmp_path / 'user-data.sh'
    user_data_file.write_text(USER_DATA)
    # The CLI reads file:// as text and base64-encodes UserData itself.
    launched = aws.run('run-instances', '--image-id', compute_server.image_id, '--count', '2',
                       '--instance-type', 't1.micro', '--key-name', 'laptop',
                       '--user-data', f'file://{user_data_file}',
                       '--tag-specifications', 'ResourceType=instance,Tags=[{Key=app,Value=shop-web}]')
    ids = sorted(instance['InstanceId'] for instance in launched['Instances'])
    assert len(ids) == 2
    aws.run('wait', 'instance-running', '--instance-ids', *ids)

    # Filters: state, tag, wildcard; both filters at once.
    running = aws.instances('--filters', 'Name=instance-state-name,Values=running')
    assert sorted(running) == ids
    assert {i['KeyName'] for i in running.values()} == {'laptop'}
    assert {tuple((t['Key'], t['Value']) for t in i['Tags']) for i in running.values()} == {(('app', 'shop-web'),)}
    assert sorted(aws.instances('--filters', 'Name=instance-state-name,Values=running',
                                'Name=tag:app,Values=shop-*')) == ids
    assert aws.instances('--filters', 'Name=tag:app,Values=blog-*') == {}

    # Paging over eight instances: pages of five followed by hand, then the CLI's own paginator.
    more = aws.run('run-instances', '--image-id', compute_server.image_id, '--count', '6',
                   '--instance-type', 't1.micro')
    everything = sorted(ids + [instance['InstanceId'] for instance in more['Instances']])
    pages, token = [], None
    while True:
        page = aws.run('describe-instances', '--no-paginate', '--max-results', '5',
                       *(['--next-token', token] if token else []))
        pages.append([i['InstanceId'] for r in page['Reservations'] for i in r['Instances']])
        token = page.get('NextToken')
        if not token:
            break
    assert [len(page) for page in pages] == [5, 3]
    assert sorted(sum(pages, [])) == everything
    assert sorted(aws.instances('--page-size', '5')) == everything

    # Tags.
    aws.run('create-tags', '--resources', *ids, '--tags', 'Key=Name,Value=web', 'Key=tier,Value=front')
    aws.run('delete-tags', '--resources', ids[1], '--tags', 'Key=tier')
    described = aws.run('describe-tags', '--filters', f'Name=resource-id,Values={",".join(ids)}')['Tags']
    assert sorted((t['ResourceId'], t['Key'], t['Value']) for t in described) == sorted([
        (ids[0], 'Name', 'web'), (ids[0], 'app', 'shop-web'), (ids[0], 'tier', 'front'),
        (ids[1], 'Name', 'web'), (ids[1], 'app', 'shop-web')])
    assert sorted(aws.instances('--filters', 'Name=tag:tier,Values=front')) == [ids[0]]

    # Elastic IPs: VPC style, then classic style.
    address = aws.run('allocate-address', '--domain', 'vpc')
    association = aws.run('associate-address', '--allocation-id', address['AllocationId'],
                          '--instance-id', ids[0])['AssociationId']
    assert aws.instances('--instance-ids', ids[0])[ids[0]]['PublicIpAddress'] == address['PublicIp']
    aws.run('disassociate-address', '--association-id', association)
    assert 'PublicIpAddress' not in aws.instances('--instance-ids', ids[0])[ids[0]]
    aws.run('release-address', '--allocation-id', address['AllocationId'])
    classic = aws.run('allocate-address')['PublicIp']
    aws.run('associate-address', '--public-ip', classic, '--instance-id', ids[1])
    assert [a['InstanceId'] for a in aws.run('describe-addresses', '--public-ips', classic)['Addresses']] == [ids[1]]
    aws.run('disassociate-address', '--public-ip', classic)
    aws.run('release-address', '--public-ip', classic)
    assert aws.run('describe-addresses')['Addresses'] == []

    # Stop, start, reboot.
    stopping = aws.run('stop-instances', '--instance-ids', ids[0])['StoppingInstances']
    assert [(s['InstanceId'], s['PreviousState']['Name']) for s in stopping] == [(ids[0], 'running')]
    aws.run('wait', 'instance-stopped', '--instance-ids', ids[0])
    aws.run('start-instances', '--instance-ids', ids[0])
    aws.run('wait', 'instance-running', '--instance-ids', ids[0])
    aws.run('reboot-instances', '--instance-ids', ids[0])
    aws.run('wait', 'instance-running', '--instance-ids', ids[0])

    # Console output: the CLI hands back botocore's decoding of the base64 it received.
    def console():
        return aws.run('get-console-output', '--instance-id', ids[0]).get('Output', '')
    wait_for(lambda: 'rebooted' in console())
    assert f'domain {ids[0]} started' in console()
    user_data = aws.run('describe-instance-attribute', '--instance-id', ids[1], '--attribute', 'userData')
    assert base64.b64decode(user_data['UserData']['Value']).decode() == USER_DATA

    # Termination: the waiter needs them still listed, as terminated.
    terminating = aws.run('terminate-instances', '--instance-ids', *everything)['TerminatingInstances']
    assert sorted(change['InstanceId'] for change in terminating) == everything
    assert {change['CurrentState']['Name'] for change in terminating} <= {'shutting-down', 'terminated'}
    aws.run('wait', 'instance-terminated', '--instance-ids', *everything)
    assert {i['State']['Name'] for i in aws.instances('--instance-ids', *ids).values()} == {'terminated'}
    assert aws.instances('--filters', 'Name=instance-state-name,Values=running') == {}
