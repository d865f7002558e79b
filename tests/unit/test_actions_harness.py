"""The in-process harness itself: requests are signed, parsed and refused as over HTTP."""
import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.support.client_errors import error_code
from tests.support.harness import ENDPOINT


def test_requests_reach_the_app_signed_and_answers_parse(ec2):
    regions = ec2.describe_regions()['Regions']
    assert [region['RegionName'] for region in regions] == ['reservoir-1']


def test_a_wrong_secret_is_refused(world):
    world.account('mallory')
    user = world.users['mallory']
    forged = boto3.client('ec2', endpoint_url=ENDPOINT, region_name='reservoir-1',
                          aws_access_key_id=user.access_key_id, aws_secret_access_key='x' * 40,
                          config=botocore.config.Config(retries={'max_attempts': 1}))
    forged.meta.events.register('before-send.ec2', world._send)
    assert error_code(forged.describe_regions) in ('SignatureDoesNotMatch', 'AuthFailure')


@pytest.mark.parametrize('region', ['us-east-1', 'reservoir-2'])
def test_a_signature_for_another_region_is_refused_even_with_the_right_secret(world, region):
    world.account('mallory')
    user = world.users['mallory']
    elsewhere = boto3.client('ec2', endpoint_url=ENDPOINT, region_name=region,
                             aws_access_key_id=user.access_key_id, aws_secret_access_key=user.secret_access_key,
                             config=botocore.config.Config(retries={'max_attempts': 1}))
    elsewhere.meta.events.register('before-send.ec2', world._send)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        elsewhere.describe_regions()
    error = raised.value.response['Error']
    assert error['Code'] == 'AuthFailure' and f"not '{region}'" in error['Message']
