import botocore.exceptions
import pytest
from botocore import xform_name

from ec2api.actions import implemented_actions
from ec2api.errors import EC2Error
from ec2api.filters import filter_items, shape_tags
from ec2api.service_model import operation

ITEMS = [
    {'Id': 'i-1', 'State': 'running', 'Tags': [{'Key': 'env', 'Value': 'prod'}]},
    {'Id': 'i-2', 'State': 'stopped', 'Tags': [{'Key': 'env', 'Value': 'dev'}, {'Key': 'x', 'Value': ''}]},
    {'Id': 'i-3', 'State': 'running', 'Tags': []},
]
FIELDS = {'instance-id': lambda i: i['Id'], 'state': lambda i: i['State']}


def ids(filters):
    return [item['Id'] for item in filter_items(ITEMS, filters, FIELDS, shape_tags)]


def test_values_are_ored_and_filters_anded():
    assert ids([{'Name': 'state', 'Values': ['running', 'stopped']}]) == ['i-1', 'i-2', 'i-3']
    assert ids([{'Name': 'state', 'Values': ['running']}, {'Name': 'tag:env', 'Values': ['prod']}]) == ['i-1']


@pytest.mark.parametrize('pattern, expected', [
    ('i-*', ['i-1', 'i-2', 'i-3']), ('i-?', ['i-1', 'i-2', 'i-3']), ('*2', ['i-2']),
    ('i\\-1', ['i-1']), ('i-\\*', []), ('I-1', []),
])
def test_wildcards(pattern, expected):
    assert ids([{'Name': 'instance-id', 'Values': [pattern]}]) == expected


def test_tag_key_and_tag_value():
    assert ids([{'Name': 'tag-key', 'Values': ['x']}]) == ['i-2']
    assert ids([{'Name': 'tag-value', 'Values': ['d*']}]) == ['i-2']
    assert ids([{'Name': 'tag:env', 'Values': ['*']}]) == ['i-1', 'i-2']


def test_unknown_filter_name_is_invalid_parameter_value():
    with pytest.raises(EC2Error) as raised:
        ids([{'Name': 'colour', 'Values': ['red']}])
    assert raised.value.code == 'InvalidParameterValue' and 'colour' in raised.value.message


def actions_with_filters():
    return [action for action in implemented_actions()
            if operation(action).input_shape is not None and 'Filters' in operation(action).input_shape.members]


@pytest.mark.parametrize('action', actions_with_filters())
@pytest.mark.parametrize('filters', [[{'Values': ['x']}], [{'Name': '', 'Values': ['x']}], [{'Name': 'tag:k'}],
                                     [{'Name': 'tag:k', 'Values': []}]], ids=['nameless', 'empty-name', 'no-values',
                                                                           'empty-values'])
def test_every_filter_needs_a_name_and_a_value(world, ec2, action, filters):
    # The same refusal from every Describe*, whatever engine filters its items.
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        getattr(ec2, xform_name(action))(Filters=filters)
    name = filters[0].get('Name')
    expected = f"The filter '{name}' needs at least one value." if name else "The filter 'null' is invalid"
    assert raised.value.response['Error'] == {'Code': 'InvalidParameterValue', 'Message': expected}
