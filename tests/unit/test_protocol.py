"""The model-driven parser and renderer against botocore's own serializer and parser."""
import datetime

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ec2api.errors import EC2Error
from ec2api.parser import parse_params
from ec2api.renderer import render_error, render_response
from ec2api.service_model import ec2_model, operation

OUTPUT_OPERATIONS = ['RunInstances', 'DescribeInstances', 'DescribeImages', 'DescribeKeyPairs', 'ImportKeyPair',
                     'AssociateAddress', 'RegisterImage', 'DescribeInstanceTypes', 'CreateKeyPair',
                     'DescribeAddresses', 'GetConsoleOutput', 'DescribeInstanceStatus',
                     'TerminateInstances', 'DescribeTags', 'DescribeRegions', 'AllocateAddress']
OPERATIONS = ['RunInstances', 'DescribeInstances', 'DescribeImages', 'CreateTags', 'DescribeKeyPairs',
              'ImportKeyPair', 'AssociateAddress', 'ModifyInstanceAttribute', 'RegisterImage',
              'DescribeInstanceTypes', 'CreateKeyPair', 'DescribeAddresses', 'GetConsoleOutput',
              'DescribeInstanceStatus', 'TerminateInstances', 'DescribeTags']

xml_text = st.text(st.characters(blacklist_categories=('Cs', 'Cc')), min_size=1, max_size=20)
utc_seconds = st.datetimes(min_value=datetime.datetime(1990, 1, 1), max_value=datetime.datetime(2100, 1, 1),
                           timezones=st.just(datetime.timezone.utc)).map(lambda d: d.replace(microsecond=0))


def value_for(shape, depth=0, required=False, in_list=False):
    """A hypothesis strategy producing a valid Python value for a botocore shape."""
    kind = shape.type_name
    if shape.name == 'Filter':      # the parser refuses a filter without a name or values
        return st.fixed_dictionaries({'Name': xml_text, 'Values': st.lists(xml_text, min_size=1, max_size=3)})
    if kind == 'structure':
        required_here = required or in_list
        if depth > 3 and not required_here:
            return st.just({})
        members = {name: value_for(member, depth + 1, name in shape.required_members)
                   for name, member in shape.members.items()}
        required = {name: members.pop(name) for name in shape.required_members if name in members}
        structures = st.fixed_dictionaries(required, optional=members)
        # The wire cannot carry an empty structure where one must stand.
        return structures.filter(bool) if required_here else structures
    if kind == 'list':
        return st.lists(value_for(shape.member, depth + 1, in_list=True), min_size=1 if required else 0,
                        max_size=3 if depth < 3 or required else 0)
    if kind in ('integer', 'long'):
        return st.integers(-2**40, 2**40)
    if kind == 'boolean':
        return st.booleans()
    if kind in ('float', 'double'):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == 'timestamp':
        return utc_seconds
    if kind == 'blob':
        return st.binary(min_size=1, max_size=20)
    if kind == 'map':
        return st.dictionaries(xml_text, value_for(shape.value, depth + 1), max_size=2)
    return xml_text


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), name=st.sampled_from(OPERATIONS))
def test_what_botocore_serializes_parses_back_equal(data, name):
    model = operation(name)
    value = data.draw(value_for(model.input_shape))
    request = create_serializer('ec2', include_validation=False).serialize_to_request(value, model)
    params = {key: str(item) for key, item in request['body'].items()}
    assert parse_params(model, params) == _without_empty_collections(value)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), name=st.sampled_from(OUTPUT_OPERATIONS))
def test_what_we_render_botocore_parses_back_equal(data, name):
    model = operation(name)
    value = data.draw(value_for(model.output_shape))
    body = render_response(model, value, 'req-1')
    parsed = create_parser('ec2').parse({'body': body, 'headers': {}, 'status_code': 200}, model.output_shape)
    parsed.pop('ResponseMetadata')
    assert parsed == value


def _without_empty_collections(value):
    # The Query wire has no spelling for an empty list or an empty structure.
    if isinstance(value, dict):
        cleaned = {key: _without_empty_collections(item) for key, item in value.items()}
        return {key: item for key, item in cleaned.items() if item not in ({}, [])}
    if isinstance(value, list):
        cleaned = [_without_empty_collections(item) for item in value]
        return [item for item in cleaned if item not in ({}, [])]
    return value


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=10),
       st.sampled_from(OPERATIONS))
def test_arbitrary_parameters_give_a_result_or_an_ec2_error(params, name):
    try:
        parse_params(operation(name), params)
    except EC2Error as error:
        assert error.status == 400


def test_boto2_scalar_sent_as_a_list_is_accepted():
    assert parse_params(operation('GetConsoleOutput'), {'InstanceId.1': 'i-1'}) == {'InstanceId': 'i-1'}


def test_filters_are_grouped_and_ordered_by_index():
    params = {'Filter.2.Name': 'b', 'Filter.2.Value.1': 'y', 'Filter.1.Name': 'a',
              'Filter.1.Value.10': 'x10', 'Filter.1.Value.2': 'x2'}
    parsed = parse_params(operation('DescribeInstances'), params)
    assert parsed['Filters'] == [{'Name': 'a', 'Values': ['x2', 'x10']}, {'Name': 'b', 'Values': ['y']}]


@pytest.mark.parametrize('filters, values, accepted', [(50, 1, True), (51, 1, False), (1, 200, True),
                                                       (1, 201, False)])
def test_filters_and_values_beyond_ec2s_limits_are_refused(filters, values, accepted):
    params = {f'Filter.{f}.{key}': value for f in range(1, filters + 1)
              for key, value in [('Name', 'tag:k'), *((f'Value.{v}', f'x{v}') for v in range(1, values + 1))]}
    if accepted:
        assert len(parse_params(operation('DescribeInstances'), params)['Filters']) == filters
        return
    with pytest.raises(EC2Error) as raised:
        parse_params(operation('DescribeInstances'), params)
    assert raised.value.code == 'FilterLimitExceeded' and raised.value.status == 400


def test_strings_stay_strings_until_the_model_types_them():
    parsed = parse_params(operation('CreateTags'), {'ResourceId.1': 'i-1', 'Tag.1.Key': 'mode',
                                                    'Tag.1.Value': '0777'})
    assert parsed['Tags'] == [{'Key': 'mode', 'Value': '0777'}]


@pytest.mark.parametrize('params, code', [
    ({'MinCount': '1'}, 'MissingParameter'),
    ({'MinCount': 'one', 'MaxCount': '1'}, 'InvalidParameterValue'),
    ({'MinCount': '1', 'MaxCount': '1', 'DryRun': 'maybe'}, 'InvalidParameterValue'),
])
def test_missing_or_malformed_parameters_are_named(params, code):
    with pytest.raises(EC2Error) as raised:
        parse_params(operation('RunInstances'), params)
    assert raised.value.code == code


def test_response_echoes_version_with_trailing_slash_and_request_id_first():
    body = render_response(operation('DescribeKeyPairs'), {'KeyPairs': []}, 'abc', '2014-10-01').decode()
    assert '<DescribeKeyPairsResponse xmlns="http://ec2.amazonaws.com/doc/2014-10-01/"><requestId>abc' in body


def test_a_junk_version_is_not_echoed():
    body = render_response(operation('DescribeKeyPairs'), {}, 'abc', '"><x').decode()
    assert 'doc/2016-11-15/' in body and '"><x' not in body


def test_absent_optional_fields_are_omitted():
    body = render_response(operation('DescribeKeyPairs'),
                           {'KeyPairs': [{'KeyName': 'k', 'KeyFingerprint': None}]}, 'r').decode()
    assert '<keyName>k</keyName>' in body and 'keyFingerprint' not in body


def test_timestamps_have_milliseconds_and_z():
    moment = datetime.datetime(2026, 11, 24, 16, 2, 17, 123456, tzinfo=datetime.timezone.utc)
    body = render_response(operation('DescribeKeyPairs'),
                           {'KeyPairs': [{'KeyName': 'k', 'CreateTime': moment}]}, 'r').decode()
    assert '<createTime>2026-11-24T16:02:17.123Z</createTime>' in body


def test_error_document_has_no_namespace_and_exactly_code_then_message():
    from lxml import etree
    root = etree.fromstring(render_error('InvalidAMIID.NotFound', "The image id '<x>' does not exist", 'r1'))
    assert root.tag == 'Response' and root.nsmap == {}
    error = root.find('Errors/Error')
    assert [child.tag for child in error] == ['Code', 'Message']
    assert error[1].text == "The image id '<x>' does not exist"
    assert root.find('RequestID').text == 'r1'


def test_characters_xml_cannot_carry_are_dropped_not_sent():
    from lxml import etree
    body = render_response(operation('DescribeKeyPairs'), {'KeyPairs': [{'KeyName': 'a\x00b\x1bc'}]}, 'r')
    etree.fromstring(body)


def test_every_operation_in_the_model_has_a_compilable_output_shape():
    from ec2api.renderer import writer_for
    model = ec2_model()
    for name in model.operation_names:
        shape = model.operation_model(name).output_shape
        if shape is not None:
            writer_for(shape)


def test_actions_without_an_output_shape_answer_return_true():
    body = render_response(operation('DeleteTags'), {}, 'r').decode()
    assert body.endswith('<requestId>r</requestId><return>true</return></DeleteTagsResponse>')


@pytest.mark.parametrize('text', ['a\rb', 'a\r\nb', '\r', 'tab\there', 'line\nbreak', ']]>', '<![CDATA[x]]>',
                                  '&amp;', '\U0001F600 non-BMP', '\u2028\u2029', ' padded ', '\ufffd', '"quoted\''])
def test_accepted_text_comes_back_byte_exact(text):
    model = operation('DescribeTags')
    value = {'Tags': [{'Key': text, 'Value': text, 'ResourceId': 'i-1', 'ResourceType': 'instance'}]}
    body = render_response(model, value, 'req-1')
    parsed = create_parser('ec2').parse({'body': body, 'headers': {}, 'status_code': 200}, model.output_shape)
    assert parsed['Tags'] == value['Tags']
    assert parse_params(operation('CreateTags'), {'ResourceId.1': 'i-1', 'Tag.1.Key': text})['Tags'] == [{'Key': text}]


def test_a_carriage_return_is_written_as_a_character_reference():
    body = render_response(operation('DescribeTags'), {'Tags': [{'Key': 'k', 'Value': 'a\rb'}]}, 'req-1')
    assert b'<value>a&#xD;b</value>' in body
