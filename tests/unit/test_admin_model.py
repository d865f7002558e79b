"""The administrators' action set as data: its own botocore model beside EC2's, served by the same
parser and renderer, and refused in dispatch to anyone not flagged as an administrator."""
import pytest

from ec2api.actions import handler_for
from ec2api.authentication import Principal
from ec2api.dispatch import Dispatcher
from ec2api.errors import EC2Error
from ec2api.parser import parse_params
from ec2api.renderer import render_response
from ec2api.service_model import admin_model, ec2_model, is_admin_action, operation

ADMIN_ACTIONS = ('DescribeCloudHosts', 'DescribeCloudHostInstances', 'DescribeCloudInstances', 'ModifyCloudHost', 'EvacuateCloudHost',
                 'DescribeCloudNetworks', 'DescribeCloudUsers', 'DescribePlacementFailures',
                 'DescribeCapacityHistory', 'DescribeLaunchHistory')


def test_the_admin_model_is_an_ec2_protocol_model_signed_as_ec2():
    model = admin_model()
    assert sorted(model.operation_names) == sorted(ADMIN_ACTIONS)
    assert (model.protocol, model.signing_name, model.service_name) == ('ec2', 'ec2', 'reservoir-admin')
    assert not set(model.operation_names) & set(ec2_model().operation_names)


def test_admin_shapes_never_share_a_name_with_ec2s():
    # The renderer compiles one writer per shape name: a clash would render one model's shape as the other's.
    assert not set(admin_model().shape_names) & set(ec2_model().shape_names)


@pytest.mark.parametrize('action', ADMIN_ACTIONS)
def test_every_admin_action_is_found_served_and_admin_only(action):
    assert operation(action).service_model.service_name == 'reservoir-admin'
    assert handler_for(action) is not None and is_admin_action(action)
    assert not is_admin_action('DescribeInstances')


def test_admin_requests_parse_and_answers_render_in_the_ec2_style():
    args = parse_params(operation('ModifyCloudHost'), {'HostName': 'sim-00001', 'Enabled': 'false'})
    assert args == {'HostName': 'sim-00001', 'Enabled': False}
    with pytest.raises(EC2Error) as missing:
        parse_params(operation('ModifyCloudHost'), {'HostName': 'sim-00001'})
    assert missing.value.code == 'MissingParameter'
    assert parse_params(operation('DescribeCloudHosts'), {'HostName.1': 'a', 'HostName.2': 'b'}) == {
        'HostNames': ['a', 'b']}
    body = render_response(operation('DescribeCloudHosts'), {'Hosts': [{'HostName': 'a<b', 'VcpuUsed': 3,
                                                                         'Enabled': True}]}, 'r1').decode()
    assert body.endswith('<DescribeCloudHostsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                         '<requestId>r1</requestId><hostSet><item><hostName>a&lt;b</hostName><enabled>true</enabled>'
                         '<vcpuUsed>3</vcpuUsed></item></hostSet></DescribeCloudHostsResponse>')


class _Cloud:
    class config:
        class compute:
            rate_limits = False
            rate_limit_mutate = rate_limit_describe = '1,1'

    def __getattr__(self, name):
        raise AssertionError(f'the back-end was reached ({name})')


@pytest.mark.parametrize('action', ADMIN_ACTIONS)
def test_a_user_is_refused_before_any_parameter_is_read(action):
    dispatcher = Dispatcher(_Cloud())
    with pytest.raises(EC2Error) as refused:
        dispatcher.call(action, {'HostName.x': '\x00', 'MaxResults': 'many'}, Principal('111111111111', 'alice'),
                        version='', request_id='r', host='h')
    assert (refused.value.code, refused.value.status) == ('UnauthorizedOperation', 403)


@pytest.mark.parametrize('uri, domain_type, shown', [
    ('test:///var/lib/reservoir/simulated/sim-00001.xml', 'test', 'test:///var/lib/reservoir/simulated/sim-00001.xml'),
    ('qemu:///system', 'qemu', 'qemu:///system'),
    ('qemu+ssh://root:hunter2@node.example:2222/system?keyfile=/root/.ssh/id', 'kvm', 'qemu+ssh://root@node.example:2222/system'),
    ('ec2+https://key:secret@peer.example:8773/services/Cloud?x=1', 'ec2', 'https://peer.example:8773/services/Cloud'),
])
def test_host_uris_are_shown_without_secrets(uri, domain_type, shown):
    from backend.resource_pool import public_uri
    assert public_uri(uri, domain_type) == shown
