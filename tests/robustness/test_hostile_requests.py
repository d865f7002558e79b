"""Hostile and careless requests over every action the cloud serves.

For each action (taken from the registry, so new actions join by themselves), hypothesis builds
requests from the action's input shape in botocore's model: members missing, random, oversized,
mistyped, with garbage list indices, or naming the victim's resources. Whatever it sends:
- the answer is never a 5xx, and a refusal is a well-formed EC2 error document;
- a refused request changes nothing stored;
- the victim's resources are neither changed by the attacker nor shown to it.
Signing faults get the same treatment in their own test.
"""
import base64

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ec2api.actions import implemented_actions
from ec2api.service_model import operation, wire_name
from tests.robustness.conftest import SECRET, VERSION, assert_well_formed

pytestmark = pytest.mark.robustness

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['', ' ', '*', '?', '\\', '%', "'; DROP TABLE instances; --", '<x>&</x>', '../../etc/passwd',
                     'i-00000000', 'i-0123456789abcdef0', 'ami-ffffffff', 'sg-1', 'true', 'false', '-1', '0',
                     '99999999999999999999', '1e308', 'NaN', 'ZmFrZQ==', '\u202e', '\x00', 'x' * 5000]),
    st.text(min_size=300, max_size=3000),
)


# Values a careless but well-meaning client sends: real filter names, states, types, wildcards.
plausible_text = st.sampled_from([
    'instance-state-name', 'instance-id', 'image-id', 'owner-id', 'key-name', 'tag:secret', 'tag-key',
    'tag-value', 'resource-id', 'name', 'state', 'public-ip', 'allocation-id', 'group-name', 'architecture',
    'running', 'stopped', '*', 'v*', 't1.micro', 'm1.small', 'x86_64', 'default', 'vpc', 'standard', 'spread',
    'cluster', 'self', 'all', 'reservoir', 'reservoir-1', 'reservoir-1a', 'machine', 'launchPermission',
    'description', 'userData', 'instanceType', 'attacker-key', 'ed25519', 'rsa', 'secret', 'victim', 'vpc-id',
    'subnet-id', 'is-default', 'cidr', '10.99.0.0/16', '172.31.0.0/16', '10.99.1.0/24', 'enableDnsSupport',
    'enableDnsHostnames'])


def victim_values(victim):
    return st.sampled_from([victim['instance'], victim['image'], victim['allocation'], victim['public_ip'],
                            victim['key_name'], victim['key_id'], victim['group'], victim['account'],
                            victim['vpc'], victim['subnet'], victim['gateway'], victim['eni'], victim['volume'],
                            victim['snapshot'], victim['security_group']])


def flat_params(shape, prefix, victim, depth=0):
    """Wire parameters for a shape, as a strategy of {name: value}."""
    if depth > 6:
        return st.just({})
    kind = shape.type_name
    if kind == 'structure':
        members = [flat_params(member, f'{prefix}{wire_name(name, member)}', victim, depth + 1)
                   for name, member in shape.members.items()]
        return _some_of(members)
    if kind == 'list':
        index = st.one_of(st.integers(1, 3).map(str), st.integers(1, 3).map(str),
                          st.sampled_from(['0', 'x', '99999999999', '-1', '']))
        item = st.tuples(index, st.deferred(lambda: flat_params(shape.member, '', victim, depth + 1)))
        return st.lists(item, max_size=3).map(
            lambda items: _merged([{_join(prefix, f'{i}{("." + k) if k else ""}'): v for k, v in values.items()}
                                   for i, values in items]))
    if kind == 'map':
        return st.just({})
    # Plausible values more often than junk, so requests get past the first check to the deeper ones.
    value = {'integer': st.one_of(st.integers(0, 1000).map(str), st.integers(5, 20).map(str),
                                  st.integers(-2 ** 70, 2 ** 70).map(str), hostile_text),
             'long': st.one_of(st.integers(0, 1000).map(str), st.integers(-2 ** 70, 2 ** 70).map(str)),
             'boolean': st.sampled_from(['true', 'false', 'true', 'false', 'TRUE', 'yes', '1', '']),
             'blob': st.one_of(st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()), hostile_text),
             'timestamp': st.one_of(st.sampled_from(['2026-01-01T00:00:00Z', '0', 'yesterday']), hostile_text),
             }.get(kind, st.one_of(plausible_text, plausible_text, victim_values(victim), hostile_text))
    return value.map(lambda text: {prefix.rstrip('.'): text})


def _join(prefix, rest):
    return f'{prefix}.{rest}' if prefix else rest


def _merged(dicts):
    merged = {}
    for entry in dicts:
        merged.update(entry)
    return merged


def requests_for(action, victim):
    shape = operation(action).input_shape
    if shape is None:
        return st.just({})
    members = [flat_params(member, wire_name(name, member), victim)
               for name, member in shape.members.items() if name != 'DryRun']
    return _some_of(members)


def _some_of(members):
    """A few of the members at a time: a request with one odd value reaches the check that value
    meets, instead of being stopped earlier by another odd value."""
    if not members:
        return st.just({})
    chosen = st.lists(st.integers(0, len(members) - 1), max_size=min(3, len(members)), unique=True)
    return chosen.flatmap(lambda indices: st.tuples(*[members[i] for i in indices]).map(_merged))


@pytest.mark.parametrize('action', implemented_actions())
def test_hostile_parameters_never_break_the_cloud_nor_reach_the_victim(deployment, action):
    victim = deployment.victim_ids
    victim_private = [victim[key] for key in ('instance', 'image', 'allocation', 'key_id', 'public_ip', 'vpc',
                                              'subnet', 'gateway', 'eni', 'volume', 'security_group')]
    victim_secrets = [SECRET, victim['fingerprint'], victim['private_ip'], 'victim-image']

    passed = {}     # the state after the last example that passed: the state before the next one

    @SETTINGS
    @given(params=requests_for(action, victim))
    def attack(params):
        before = passed.pop('state', None) or deployment.state()
        status, body = deployment.send({'Action': action, 'Version': VERSION, **params})
        code = assert_well_formed(status, body)
        after = deployment.state()
        if code is not None:
            assert after == before, f'{action} refused with {code} but changed stored state'
        else:
            # A victim id the attacker did not send itself (a name it chose is echoed back) must not
            # appear in what it is shown.
            text, sent = body.decode('utf-8', 'replace'), repr(params) + deployment.stored_by_attacker()
            shown = [value for value in victim_private if value in text and value not in sent]
            shown += [value for value in victim_secrets if value in text]
            assert not shown, f'{action} showed the victim\'s resources {shown}'
        passed['state'] = assert_victim_untouched(deployment, after)
    attack()


def assert_victim_untouched(deployment, state):
    """Asserts victim_untouched in the stored `state` just taken; returns the stored state after.

    What it reads is a function of the stored state alone, so in the very state it last held in it
    holds again without asking (most hostile requests change nothing); any change, even to another
    table, asks again. Its reads may create what is made on first use (an account's default VPC),
    so the state it held in is taken after them."""
    if state != deployment.victim_untouched_state:
        assert victim_untouched(deployment)
        state = deployment.victim_untouched_state = deployment.state()
    return state


def victim_untouched(deployment):
    """The victim still has everything, unchanged by whatever the attacker managed to do."""
    owner, victim = deployment.victim.account_id, deployment.victim_ids
    cloud = deployment.cloud
    (instance,) = cloud.instances.describe(owner, ids=[victim['instance']])
    (address,) = cloud.addresses.describe(owner, allocation_ids=[victim['allocation']])
    images = cloud.images.describe(owner, image_ids=[victim['image']])
    return (instance.state == 'running' and instance.tags == {'secret': SECRET}
            and address.instance_id == victim['instance'] and len(images) == 1
            and not images[0].public and images[0].name == 'victim-image'
            and [key.name for key in cloud.keypairs.describe(owner)] == ['victim-key']
            and cloud.vpcs.attribute(owner, victim['vpc'], 'enableDnsHostnames') is False
            and [s.vpc_id for s in cloud.subnets.describe(owner, [victim['subnet']])] == [victim['vpc']]
            and [g.vpc_id for g in cloud.gateways.describe(owner, [victim['gateway']])] == [victim['vpc']]
            and [i.instance_id for i in cloud.interfaces.describe(owner, [victim['eni']])] == [victim['instance']]
            and [(v.state, v.size_gib, [a.instance_id for a in v.attachments])
                 for v in cloud.volumes.describe(owner, [victim['volume']])] == [('in-use', 1, [victim['instance']])]
            and [g.name for g in cloud.security_groups.describe(owner, [victim['security_group']])] == ['victim-sg']
            and [(s.volume_id, s.description) for s in cloud.volume_snapshots.describe(owner, [victim['snapshot']])]
            == [(victim['volume'], 'the victim')]
            and cloud.volume_snapshots.volume_permissions(owner, victim['snapshot']) == (False, ()))


# --- signing faults ---------------------------------------------------------------------------------

def _drop(header):
    def mutate(headers, data):
        return {name: value for name, value in headers.items() if name.lower() != header}, data
    return mutate


def _replace(header, value):
    def mutate(headers, data):
        return {**{name: v for name, v in headers.items() if name.lower() != header.lower()}, header: value}, data
    return mutate


def _cut_signature(headers, data):
    authorization = headers['Authorization']
    return {**headers, 'Authorization': authorization[:-7]}, data


def _body_changed(headers, data):
    return headers, data + b'&Extra=1'


def _signed_with(access_key, secret, region):
    """Sign again, as `access_key` with `secret`, for `region`."""
    def mutate(headers, data):
        request = AWSRequest(method='POST', url='http://127.0.0.1:8773/', data=data,
                             headers={'Content-Type': headers['Content-Type']})
        SigV4Auth(Credentials(access_key, secret), 'ec2', region).add_auth(request)
        return dict(request.prepare().headers.items()), data
    return mutate


def _scope_date(headers, data):
    # A credential scope for another day than the one signed (and X-Amz-Date) says.
    authorization = headers['Authorization']
    start = authorization.index('Credential=') + len('Credential=')
    access_key, date, rest = authorization[start:].split('/', 2)
    other = '20200101' if date != '20200101' else '20200102'
    return {**headers, 'Authorization': f'{authorization[:start]}{access_key}/{other}/{rest}'}, data


# What an HTTP header can carry: no control characters (no line breaks), latin-1.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff, exclude_characters='\x7f'), max_size=200)

faults = st.one_of(
    st.sampled_from([_drop('authorization'), _drop('x-amz-date'), _cut_signature, _body_changed, _scope_date,
                     _drop('content-type'), _replace('Content-Type', 'text/plain'),
                     _replace('X-Amz-Date', '20200101T000000Z'), _replace('X-Amz-Date', 'not a date'),
                     _replace('Host', 'elsewhere.example')]),
    header_text.map(lambda text: _replace('Authorization', text)),
    header_text.map(lambda text: _replace('X-Amz-Date', text)),
)


@SETTINGS
@given(fault=faults, action=st.sampled_from(['DescribeInstances', 'TerminateInstances', 'CreateKeyPair']))
def test_signing_faults_are_refused_cleanly_and_change_nothing(deployment, fault, action):
    before = deployment.state()
    params = {'Action': action, 'Version': VERSION, 'InstanceId.1': deployment.victim_ids['instance'],
              'KeyName': 'forged'}
    status, body = deployment.send(params, mutate=fault)
    code = assert_well_formed(status, body)
    assert code is not None and 400 <= status < 500, body[:300]
    assert deployment.state() == before


def _one_character_changed(secret):
    return secret[:-1] + ('A' if secret[-1] != 'A' else 'B')


@SETTINGS
@given(whose=st.sampled_from(['victim', 'attacker', 'nobody']), secret=st.one_of(
    st.sampled_from(['victim', 'attacker', 'victim-changed']), st.text(st.characters(min_codepoint=0x21,
                                                                                     max_codepoint=0x7e))),
       action=st.sampled_from(['DescribeInstances', 'TerminateInstances', 'DeleteKeyPair', 'ReleaseAddress']))
def test_a_wrong_secret_is_refused_and_changes_nothing(deployment, whose, secret, action):
    users = {'victim': deployment.victim, 'attacker': deployment.attacker}
    access_key = users[whose].access_key_id if whose in users else 'AKIDNOSUCHKEY0000000'
    secret = {'victim': deployment.victim.secret_access_key, 'attacker': deployment.attacker.secret_access_key,
              'victim-changed': _one_character_changed(deployment.victim.secret_access_key)}.get(secret, secret)
    if whose in users and secret == users[whose].secret_access_key:
        return      # the right secret: not a fault
    before = deployment.state()
    victim = deployment.victim_ids
    params = {'Action': action, 'Version': VERSION, 'InstanceId.1': victim['instance'], 'KeyName': 'victim-key',
              'AllocationId': victim['allocation']}
    status, body = deployment.send(params, mutate=_signed_with(access_key, secret, deployment.cloud.config.region))
    assert assert_well_formed(status, body) in ('AuthFailure', 'SignatureDoesNotMatch'), body[:300]
    assert deployment.state() == before


@pytest.mark.parametrize('action', ['DescribeInstances', 'TerminateInstances', 'DeleteKeyPair'])
def test_the_victims_own_key_signing_for_another_region_is_refused(deployment, action):
    def other_region(headers, data):
        request = AWSRequest(method='POST', url='http://127.0.0.1:8773/', data=data,
                             headers={'Content-Type': headers['Content-Type']})
        SigV4Auth(Credentials(deployment.victim.access_key_id, deployment.victim.secret_access_key), 'ec2',
                  'us-east-1').add_auth(request)
        return dict(request.prepare().headers.items()), data
    before = deployment.state()
    params = {'Action': action, 'Version': VERSION, 'InstanceId.1': deployment.victim_ids['instance'],
              'KeyName': 'victim-key'}
    status, body = deployment.send(params, mutate=other_region)
    assert assert_well_formed(status, body) == 'AuthFailure'
    assert deployment.state() == before


# --- each member alone, with odd values: reaches checks that random combinations rarely reach ----------

# Every kind of the victim's ids, each tried in every member.
ODD_VICTIM_IDS = ('instance', 'image', 'allocation', 'key_name', 'group', 'vpc', 'subnet', 'gateway', 'eni', 'volume',
                  'snapshot', 'security_group')
ODD_VALUES = ('', ' ', '-1', '0', '99999999999999999999', 'true', '*', 'x' * 300, 'i-0123456789abcdef0',
              'tag:', 'not-a-thing')


def odd_requests(shape, prefix, victim, depth=0):
    """Flat parameter dicts setting one member path at a time to an odd value (or leaving out the
    others of its structure)."""
    if depth > 6:
        return
    kind = shape.type_name
    if kind == 'structure':
        for name, member in shape.members.items():
            yield from odd_requests(member, _join(prefix, wire_name(name, member)), victim, depth + 1)
        return
    if kind == 'list':
        for index in ('1', '0', 'x'):
            yield from odd_requests(shape.member, f'{prefix}.{index}', victim, depth + 1)
        return
    if kind == 'map':
        return
    for value in ODD_VALUES + tuple(victim[key] for key in ODD_VICTIM_IDS):
        yield {prefix: value}


@pytest.mark.parametrize('action', implemented_actions())
def test_each_member_alone_with_odd_values(deployment, action):
    shape = operation(action).input_shape
    if shape is None:
        return
    before = deployment.state()
    for params in odd_requests(shape, '', deployment.victim_ids):
        status, body = deployment.send({'Action': action, 'Version': VERSION, **params})
        code = assert_well_formed(status, body)
        after = deployment.state()      # also the state before the next request: nothing runs between
        if code is not None:
            assert after == before, (action, params, code)
        before = after
    assert_victim_untouched(deployment, before)


# --- lists with many members: more ids, tags, filters and values than any limit allows -------------------

MANY = 1001


# A value of each scalar type that its parser accepts, so a crowded list is not refused at its first leaf.
TYPED_VALUES = {'integer': '1', 'long': '1', 'boolean': 'false', 'timestamp': '2026-01-01T00:00:00Z',
                'blob': 'ZmFrZQ==', 'float': '1.0', 'double': '1.0'}


def crowded_requests(shape, hints, prefix='', depth=0):
    """For each list in the shape, a request giving it MANY members (each filled in at every leaf, and
    the lists it sits in given one whole member), so the request reaches the checks of that list."""
    if depth > 6 or shape.type_name == 'map':
        return
    if shape.type_name == 'structure':
        for name, member in shape.members.items():
            yield from crowded_requests(member, hints, _join(prefix, wire_name(name, member)), depth + 1)
    elif shape.type_name == 'list':
        yield {_join(f'{prefix}.{index}', leaf): leaf_value(leaf, kind, index, hints)
               for index in range(1, MANY + 1) for leaf, kind in typed_leaf_paths(shape.member)}
        whole_member = {_join(f'{prefix}.1', leaf): leaf_value(leaf, kind, 1, hints)
                        for leaf, kind in typed_leaf_paths(shape.member)}
        for inner in crowded_requests(shape.member, hints, f'{prefix}.1', depth + 1):
            yield {**whole_member, **inner}


def leaf_value(path, kind, index, hints):
    """A value its parser accepts (a hint for the member's name if there is one), else a distinct word."""
    return hints.get(path.rsplit('.', 1)[-1]) or TYPED_VALUES.get(kind) or f'v{index}'


def typed_leaf_paths(shape, prefix='', depth=0):
    if depth > 6 or shape.type_name == 'map':
        return
    if shape.type_name == 'structure':
        for name, member in shape.members.items():
            yield from typed_leaf_paths(member, _join(prefix, wire_name(name, member)), depth + 1)
    elif shape.type_name == 'list':
        yield from typed_leaf_paths(shape.member, f'{prefix}.1', depth + 1)
    else:
        yield prefix, shape.type_name     # '' for a list of scalars


def required_defaults(deployment):
    """Sensible values for the members actions require, naming the attacker's own resources."""
    own = deployment.attacker_ids
    return {'ImageId': own['image'], 'SourceImageId': own['image'], 'InstanceId': own['instance'],
            'ResourceId.1': own['instance'], 'MinCount': '1', 'MaxCount': '1', 'KeyName': 'crowd',
            'GroupName': 'crowd', 'Strategy': 'spread', 'Name': 'crowd', 'SourceRegion': deployment.cloud.config.region,
            'PublicKeyMaterial': base64.b64encode(CROWD_PUBLIC_KEY.encode()).decode(), 'Tag.1.Key': 'crowd',
            'Attribute': 'description', 'AllocationId': 'eipalloc-00000000', 'PublicIp': '192.0.2.1'}


# The resource type each creating action tags (TagSpecification.N.ResourceType).
TAGGED_TYPES = {'RunInstances': 'instance', 'AllocateAddress': 'elastic-ip', 'CreatePlacementGroup': 'placement-group',
                'CopyImage': 'image', 'RegisterImage': 'image', 'CreateImage': 'image', 'CreateKeyPair': 'key-pair',
                'ImportKeyPair': 'key-pair'}

CROWD_PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbQhxqO4B5W7eYZg6XK4vN5bTj0mXnb5p2L3I7gq3Yk crowd'


@pytest.mark.parametrize('action', implemented_actions())
def test_lists_with_many_members(deployment, action):
    shape = operation(action).input_shape
    if shape is None:
        return
    scalars = {wire_name(name, member) for name, member in shape.members.items()
               if member.type_name not in ('list', 'structure', 'map')}
    required = {wire_name(name, shape.members[name]) for name in shape.required_members}
    defaults = {name: value for name, value in required_defaults(deployment).items()
                if name in scalars or name.split('.')[0] in required}
    hints = {'ResourceType': TAGGED_TYPES.get(action), 'Name': 'tag:crowd', 'Key': None}
    before = deployment.state()
    for params in crowded_requests(shape, hints):
        status, body = deployment.send({'Action': action, 'Version': VERSION, **defaults, **params})
        after = deployment.state()
        if assert_well_formed(status, body) is not None:
            assert after == before, (action, sorted(params)[:3])
        before = after
    assert_victim_untouched(deployment, before)
