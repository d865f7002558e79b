"""What a client sends comes back byte for byte, or is refused: nothing vanishes on the way out."""
import botocore.exceptions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ec2api.renderer import NOT_XML_CHARS
from tests.support.client_errors import error_code


def a_key_pair(ec2):
    return ec2.create_key_pair(KeyName='k')['KeyPairId']


@pytest.mark.parametrize('value', ['prod\x01x', 'k\x00', '\x1b[31mred', 'tab\x0bvertical', '\ufffe'])
def test_what_xml_cannot_carry_is_refused_and_nothing_is_stored(world, ec2, value):
    resource = a_key_pair(ec2)
    assert error_code(ec2.create_tags, Resources=[resource], Tags=[{'Key': 'env', 'Value': value}]) == \
        'InvalidParameterValue'
    assert error_code(ec2.create_tags, Resources=[resource], Tags=[{'Key': value, 'Value': 'v'}]) == \
        'InvalidParameterValue'
    assert ec2.describe_tags()['Tags'] == []
    assert error_code(ec2.create_key_pair, KeyName=f'name{value}') == 'InvalidParameterValue'


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=256).filter(lambda text: not NOT_XML_CHARS.search(text)))
def test_every_accepted_tag_value_round_trips_byte_exact(world, ec2, value):
    resource = ec2.describe_key_pairs()['KeyPairs'][0]['KeyPairId'] if ec2.describe_key_pairs()['KeyPairs'] \
        else a_key_pair(ec2)
    try:
        ec2.create_tags(Resources=[resource], Tags=[{'Key': 'exact', 'Value': value}])
    except botocore.exceptions.ClientError as error:     # refused is allowed; changed is not
        assert error.response['Error']['Code'] == 'InvalidParameterValue'
        return
    (tag,) = [tag for tag in ec2.describe_tags()['Tags'] if tag['Key'] == 'exact']
    assert tag['Value'] == value
    if not any(char in value for char in '*?\\'):      # a filter by the value seen finds it
        found = ec2.describe_tags(Filters=[{'Name': 'value', 'Values': [value]}, {'Name': 'key', 'Values': ['exact']}])
        assert [t['ResourceId'] for t in found['Tags']] == [resource]
