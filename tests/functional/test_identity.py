"""Who am I: STS GetCallerIdentity and IAM GetUser on the EC2 endpoint, as `aws sts
get-caller-identity`, boto3 and configuration tools ask them; nothing else of STS or IAM."""
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.support.client_errors import error_code

pytestmark = pytest.mark.clients

AWS = Path(sys.executable).with_name('aws')


def client(cloud_server, service, user='alice', secret=None):
    credentials = cloud_server.users[user]
    return boto3.client(service, endpoint_url=cloud_server.endpoint, region_name=cloud_server.region,
                        aws_access_key_id=credentials['access_key_id'],
                        aws_secret_access_key=secret or credentials['secret_access_key'])


def test_sts_get_caller_identity_names_the_account_and_user(cloud_server):
    alice, bob = cloud_server.users['alice'], cloud_server.users['bob']
    identity = client(cloud_server, 'sts').get_caller_identity()
    assert (identity['Account'], identity['Arn']) == (alice['account_id'], f"arn:aws:iam::{alice['account_id']}:user/alice")
    assert identity['UserId'].startswith('AIDA')
    other = client(cloud_server, 'sts', user='bob').get_caller_identity()
    assert other['Account'] == bob['account_id'] and other['UserId'] != identity['UserId']


def test_the_aws_cli_prints_the_callers_identity(cloud_server):
    credentials = cloud_server.users['alice']
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': str(cloud_server.home),
           'AWS_ACCESS_KEY_ID': credentials['access_key_id'], 'AWS_SECRET_ACCESS_KEY': credentials['secret_access_key'],
           'AWS_DEFAULT_REGION': cloud_server.region, 'AWS_CONFIG_FILE': os.devnull,
           'AWS_SHARED_CREDENTIALS_FILE': os.devnull}
    result = subprocess.run([str(AWS), 'sts', 'get-caller-identity', '--endpoint-url', cloud_server.endpoint],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['Arn'] == f"arn:aws:iam::{credentials['account_id']}:user/alice"


def test_iam_get_user_is_the_caller_only(cloud_server):
    user = client(cloud_server, 'iam').get_user()['User']
    assert (user['UserName'], user['Path']) == ('alice', '/')
    assert user['Arn'] == client(cloud_server, 'sts').get_caller_identity()['Arn']
    assert error_code(client(cloud_server, 'iam').get_user, UserName='bob') == 'NoSuchEntity'


def test_nothing_else_of_sts_or_iam_and_no_ec2_action_through_their_scope(cloud_server):
    sts = client(cloud_server, 'sts')
    assert error_code(sts.assume_role, RoleArn='arn:aws:iam::123456789012:role/admin',
                      RoleSessionName='escalate') == 'InvalidAction'
    assert error_code(client(cloud_server, 'iam').create_user, UserName='mallory') == 'InvalidAction'
    assert error_code(client(cloud_server, 'sts', secret='x' * 40).get_caller_identity) == 'AuthFailure'
    # An EC2 action signed for STS is not an EC2 request.
    signed_for_sts = boto3.client('ec2', endpoint_url=cloud_server.endpoint, region_name=cloud_server.region,
                                  aws_access_key_id=cloud_server.users['alice']['access_key_id'],
                                  aws_secret_access_key=cloud_server.users['alice']['secret_access_key'])
    signed_for_sts.meta.events.register('choose-signer.ec2', lambda **kwargs: 'v4')
    signed_for_sts._request_signer._signing_name = 'sts'     # botocore has no public switch for this
    assert error_code(signed_for_sts.describe_instances) == 'InvalidAction'
