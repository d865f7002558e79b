"""Hostile and careless requests over every administrators' action (from the admin model, so new ones
join by themselves), as an administrator and as a user:
- a user gets UnauthorizedOperation (403) whatever it sends, and nothing stored changes;
- an administrator's odd values get well-formed EC2 errors, never a 5xx, and refused ones change nothing.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ec2api.service_model import admin_model, wire_name
from tests.robustness.conftest import VERSION, assert_well_formed

pytestmark = pytest.mark.robustness

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
ADMIN_ACTIONS = sorted(admin_model().operation_names)

text = st.one_of(
    st.sampled_from(['sim-00001', 'sim-00002', 'sim-99999', '', ' ', '*', '%', "'; DROP TABLE hosts; --", '<x>&</x>',
                     '../../etc/passwd', '\x00', '\u202e', 'x' * 5000, 'true', '-1', '0']),
    st.text(max_size=40))
SCALARS = {
    'string': text,
    'boolean': st.sampled_from(['true', 'false', 'TRUE', 'yes', '1', '', 'x']),
    'integer': st.one_of(st.integers(-2 ** 70, 2 ** 70).map(str), st.integers(0, 100000).map(str), text),
    'long': st.integers(-2 ** 70, 2 ** 70).map(str),
    'timestamp': st.one_of(st.sampled_from(['2026-01-01T00:00:00Z', '2099-01-01T00:00:00Z', '1970-01-01T00:00:00Z',
                                            '0', '-1e300', '1e300', 'yesterday', '9999-12-31T23:59:59Z',
                                            '0001-01-01T00:00:00+14:00']), text),
}


def member_params(name, shape):
    """{wire name: value} strategies for one member: a scalar, or a list given with odd indices."""
    if shape.type_name == 'list':
        index = st.sampled_from(['1', '2', '0', 'x', '99999999999', ''])
        return st.dictionaries(index.map(lambda i: f'{name}.{i}'), SCALARS[shape.member.type_name], max_size=3)
    return SCALARS[shape.type_name].map(lambda value: {name: value})


def requests_for(action):
    shape = admin_model().operation_model(action).input_shape
    members = [member_params(wire_name(name, member), member) for name, member in shape.members.items()]
    if not members:
        return st.just({})
    return st.lists(st.sampled_from(members), max_size=len(members)).flatmap(
        lambda chosen: st.tuples(*chosen).map(lambda parts: {k: v for part in parts for k, v in part.items()}))


@pytest.mark.parametrize('action', ADMIN_ACTIONS)
def test_users_are_refused_whatever_they_send(deployment, action):
    @SETTINGS
    @given(params=requests_for(action), who=st.sampled_from(['attacker', 'victim']))
    def attempt(params, who):
        before = deployment.state()
        status, body = deployment.send({'Action': action, 'Version': VERSION, **params},
                                       user=getattr(deployment, who))
        assert (status, assert_well_formed(status, body)) == (403, 'UnauthorizedOperation'), body[:300]
        assert deployment.state() == before
    attempt()


@pytest.mark.parametrize('action', ADMIN_ACTIONS)
def test_administrators_odd_values_never_break_the_cloud(deployment, action):
    @SETTINGS
    @given(params=requests_for(action))
    def attempt(params):
        before = deployment.state()
        status, body = deployment.send({'Action': action, 'Version': VERSION, **params}, user=deployment.operator)
        code = assert_well_formed(status, body)
        if code is not None:
            assert status == 400 and deployment.state() == before, (params, code)
    attempt()
    for host in deployment.cloud.hosts.list():      # what an accepted ModifyCloudHost/EvacuateCloudHost did
        deployment.cloud.hosts.set_enabled(host.name, True)


EDGE_TIMES = ('0001-01-01T00:00:00+14:00', '9999-12-31T23:59:59-14:00', '0001-01-01T00:00:00Z', '1e300', '-1e300',
              '253402300800', '-62135596801', 'NaN', '2026-02-30T00:00:00Z')


@pytest.mark.parametrize('moment', EDGE_TIMES)
@pytest.mark.parametrize('action, member', [('DescribeCapacityHistory', 'StartTime'),
                                            ('DescribeCapacityHistory', 'EndTime'),
                                            ('DescribeLaunchHistory', 'StartTime')])
def test_times_at_the_edges_of_the_calendar_are_refused_cleanly(deployment, action, member, moment):
    status, body = deployment.send({'Action': action, 'Version': VERSION, member: moment}, user=deployment.operator)
    assert_well_formed(status, body)
