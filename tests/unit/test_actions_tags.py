"""Tag actions through real boto3 clients."""
import pytest

from tests.support.client_errors import error_code


def launch(world, ec2, count=1):
    reservation = ec2.run_instances(ImageId=world.image_id, MinCount=count, MaxCount=count)
    return [instance['InstanceId'] for instance in reservation['Instances']]


def tags_on(ec2, resource_id):
    described = ec2.describe_tags(Filters=[{'Name': 'resource-id', 'Values': [resource_id]}])['Tags']
    return {tag['Key']: tag['Value'] for tag in described}


def test_create_describe_and_delete(world, ec2):
    first, second = launch(world, ec2, 2)
    ec2.create_tags(Resources=[first, second], Tags=[{'Key': 'Name', 'Value': 'web'}, {'Key': 'env', 'Value': 'test'}])
    ec2.create_tags(Resources=[first], Tags=[{'Key': 'Name', 'Value': 'web-1'}, {'Key': 'empty'}])
    assert tags_on(ec2, first) == {'Name': 'web-1', 'env': 'test', 'empty': ''}
    described = ec2.describe_tags(Filters=[{'Name': 'key', 'Values': ['Name']}])['Tags']
    assert {(t['ResourceId'], t['ResourceType'], t['Value']) for t in described} == {
        (first, 'instance', 'web-1'), (second, 'instance', 'web')}
    assert {t['ResourceId'] for t in ec2.describe_tags(
        Filters=[{'Name': 'value', 'Values': ['web-*']}])['Tags']} == {first}
    instance = ec2.describe_instances(InstanceIds=[first])['Reservations'][0]['Instances'][0]
    assert {t['Key']: t['Value'] for t in instance['Tags']} == {'Name': 'web-1', 'env': 'test', 'empty': ''}

    ec2.delete_tags(Resources=[first], Tags=[{'Key': 'Name', 'Value': 'not-this-value'}, {'Key': 'empty'}])
    assert tags_on(ec2, first) == {'Name': 'web-1', 'env': 'test'}
    ec2.delete_tags(Resources=[first], Tags=[{'Key': 'Name', 'Value': 'web-1'}])
    assert tags_on(ec2, first) == {'env': 'test'}
    ec2.delete_tags(Resources=[first, second])
    assert ec2.describe_tags()['Tags'] == []


def test_tags_on_other_resources_carry_their_type(world, ec2):
    key_pair_id = ec2.create_key_pair(KeyName='k')['KeyPairId']
    allocation_id = ec2.allocate_address()['AllocationId']
    ec2.create_tags(Resources=[key_pair_id, allocation_id, world.image_id], Tags=[{'Key': 'team', 'Value': 'a'}])
    types = {t['ResourceId']: t['ResourceType'] for t in ec2.describe_tags()['Tags']}
    assert types == {key_pair_id: 'key-pair', allocation_id: 'elastic-ip', world.image_id: 'image'}
    assert [t['ResourceId'] for t in ec2.describe_tags(
        Filters=[{'Name': 'resource-type', 'Values': ['elastic-ip']}])['Tags']] == [allocation_id]


def test_pages_follow_resource_then_key(world, ec2):
    ids = launch(world, ec2, 3)
    ec2.create_tags(Resources=ids, Tags=[{'Key': f'k{n}', 'Value': str(n)} for n in range(4)])
    pages = list(ec2.get_paginator('describe_tags').paginate(PaginationConfig={'PageSize': 5}))
    assert [len(page['Tags']) for page in pages] == [5, 5, 2]
    seen = [(t['ResourceId'], t['Key']) for page in pages for t in page['Tags']]
    assert seen == sorted((resource_id, f'k{n}') for resource_id in ids for n in range(4))
    assert error_code(ec2.describe_tags, MaxResults=2) == 'InvalidParameterValue'


def test_bad_requests_and_other_accounts(world, ec2):
    (instance_id,) = launch(world, ec2)
    assert error_code(ec2.describe_tags, Filters=[{'Name': 'colour', 'Values': ['x']}]) == 'InvalidParameterValue'
    assert error_code(ec2.create_tags, Resources=['nonsense'], Tags=[{'Key': 'a', 'Value': 'b'}]) == 'InvalidID'
    assert error_code(ec2.create_tags, Resources=[instance_id], Tags=[{'Key': 'aws:x', 'Value': 'b'}]) == \
        'InvalidParameterValue'
    bob = world.client('bob')
    assert error_code(bob.create_tags, Resources=[instance_id],
                      Tags=[{'Key': 'a', 'Value': 'b'}]) == 'InvalidInstanceID.NotFound'
    assert error_code(bob.delete_tags, Resources=[instance_id]) == 'InvalidInstanceID.NotFound'
    ec2.create_tags(Resources=[instance_id], Tags=[{'Key': 'a', 'Value': 'b'}])
    assert bob.describe_tags()['Tags'] == []


PUBLIC_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbQhxqO4B5W7eYZg6XK4vN5bTj0mXnb5p2L3I7gq3Yk test')

# Every action that creates a resource and takes TagSpecifications: (arguments, resource type).
CREATORS = {
    'run_instances': (lambda world: dict(ImageId=world.image_id, MinCount=1, MaxCount=1), 'instance'),
    'allocate_address': (lambda world: dict(Domain='vpc'), 'elastic-ip'),
    'create_placement_group': (lambda world: dict(GroupName='g', Strategy='spread'), 'placement-group'),
    'copy_image': (lambda world: dict(SourceImageId=world.image_id, SourceRegion='reservoir-1', Name='copy'),
                   'image'),
    'create_key_pair': (lambda world: dict(KeyName='k'), 'key-pair'),
    'import_key_pair': (lambda world: dict(KeyName='k', PublicKeyMaterial=PUBLIC_KEY.encode()), 'key-pair'),
}

# Tags AWS refuses, and the code it refuses them with.
BAD_TAGS = {
    'no-key': ([{'Value': 'orphan'}], 'InvalidTagKey.Malformed'),
    'empty-key': ([{'Key': '', 'Value': 'v'}], 'InvalidTagKey.Malformed'),
    'reserved-key': ([{'Key': 'aws:owner', 'Value': 'v'}], 'InvalidParameterValue'),
    'long-key': ([{'Key': 'k' * 129, 'Value': 'v'}], 'InvalidParameterValue'),
    'long-value': ([{'Key': 'k', 'Value': 'v' * 257}], 'InvalidParameterValue'),
    'too-many': ([{'Key': f'k{n}', 'Value': ''} for n in range(51)], 'TagLimitExceeded'),
}


def everything_of(ec2):
    """What the caller owns, for 'a refused request created nothing'."""
    return (ec2.describe_instances()['Reservations'], ec2.describe_addresses()['Addresses'],
            ec2.describe_placement_groups()['PlacementGroups'], ec2.describe_images(Owners=['self'])['Images'],
            ec2.describe_key_pairs()['KeyPairs'], ec2.describe_tags()['Tags'])


@pytest.mark.parametrize('create', sorted(CREATORS))
@pytest.mark.parametrize('bad', sorted(BAD_TAGS))
def test_bad_tags_at_creation_are_refused_and_create_nothing(world, ec2, create, bad):
    arguments, resource_type = CREATORS[create]
    tags, expected = BAD_TAGS[bad]
    before = everything_of(ec2)
    specification = [{'ResourceType': resource_type, 'Tags': tags}]
    assert error_code(getattr(ec2, create), TagSpecifications=specification, **arguments(world)) == expected
    assert everything_of(ec2) == before


@pytest.mark.parametrize('create', sorted(CREATORS))
def test_tags_at_creation_are_for_the_created_type_only(world, ec2, create):
    arguments, resource_type = CREATORS[create]
    other = 'snapshot'        # no creator here makes one
    before = everything_of(ec2)
    assert error_code(getattr(ec2, create), TagSpecifications=[{'ResourceType': other, 'Tags': [{'Key': 'a'}]}],
                      **arguments(world)) == 'InvalidParameterValue'
    assert everything_of(ec2) == before


@pytest.mark.parametrize('create', sorted(CREATORS))
def test_tags_at_the_limits_are_kept_and_shown(world, ec2, create):
    arguments, resource_type = CREATORS[create]
    tags = [{'Key': 'k' * 128, 'Value': 'v' * 256}] + [{'Key': f'k{n}', 'Value': ''} for n in range(49)]
    getattr(ec2, create)(TagSpecifications=[{'ResourceType': resource_type, 'Tags': tags}], **arguments(world))
    (resource_id,) = {tag['ResourceId'] for tag in ec2.describe_tags()['Tags']}
    assert tags_on(ec2, resource_id) == {tag['Key']: tag['Value'] for tag in tags}


def test_key_pairs_show_and_filter_by_their_tags(world, ec2):
    key_pair_id = ec2.create_key_pair(KeyName='k', TagSpecifications=[
        {'ResourceType': 'key-pair', 'Tags': [{'Key': 'team', 'Value': 'blue'}]}])['KeyPairId']
    ec2.create_key_pair(KeyName='other')
    (shown,) = ec2.describe_key_pairs(Filters=[{'Name': 'tag:team', 'Values': ['blue']}])['KeyPairs']
    assert shown['KeyPairId'] == key_pair_id and shown['Tags'] == [{'Key': 'team', 'Value': 'blue'}]


@pytest.mark.parametrize('bad', sorted(set(BAD_TAGS) - {'too-many'}))
def test_create_tags_refuses_what_creation_refuses(world, ec2, bad):
    key_pair_id = ec2.create_key_pair(KeyName='k')['KeyPairId']
    tags, expected = BAD_TAGS[bad]
    assert error_code(ec2.create_tags, Resources=[key_pair_id], Tags=tags) == expected
    assert ec2.describe_tags()['Tags'] == []


@pytest.mark.parametrize('tags', [[{'Value': 'orphan'}], [{'Key': ''}]])
def test_delete_tags_needs_a_key_for_each_tag(world, ec2, tags):
    key_pair_id = ec2.create_key_pair(KeyName='k')['KeyPairId']
    ec2.create_tags(Resources=[key_pair_id], Tags=[{'Key': 'a', 'Value': 'orphan'}])
    assert error_code(ec2.delete_tags, Resources=[key_pair_id], Tags=tags) == 'InvalidTagKey.Malformed'
    assert tags_on(ec2, key_pair_id) == {'a': 'orphan'}


def test_delete_tags_with_a_thousand_keys(world, ec2):
    key_pair_id = ec2.create_key_pair(KeyName='k')['KeyPairId']
    ec2.create_tags(Resources=[key_pair_id], Tags=[{'Key': 'keep', 'Value': ''}, {'Key': 'k7', 'Value': 'x'},
                                                   {'Key': 'k8', 'Value': 'y'}])
    doomed = [{'Key': 'k7'}, {'Key': 'k8', 'Value': 'not-y'}] + [{'Key': f'absent{n}'} for n in range(1000)]
    ec2.delete_tags(Resources=[key_pair_id], Tags=doomed)
    assert tags_on(ec2, key_pair_id) == {'keep': '', 'k8': 'y'}


@pytest.mark.parametrize('resource_id, code', [
    ('vol-0123456789abcdef0', 'InvalidVolume.NotFound'),
    ('snap-0123456789abcdef0', 'InvalidSnapshot.NotFound'),
    ('sg-0123456789abcdef0', 'InvalidGroup.NotFound'),
    ('eni-0123456789abcdef0', 'InvalidNetworkInterfaceID.NotFound'),
])
def test_every_taggable_kind_has_its_not_found_error(ec2, resource_id, code):
    assert error_code(ec2.create_tags, Resources=[resource_id], Tags=[{'Key': 'a', 'Value': 'b'}]) == code
    assert error_code(ec2.delete_tags, Resources=[resource_id]) == code


def test_another_accounts_volume_is_not_found_for_tags(world, ec2):
    volume_id = ec2.create_volume(Size=1, AvailabilityZone='reservoir-1a')['VolumeId']
    bob = world.client('bob')
    assert error_code(bob.create_tags, Resources=[volume_id], Tags=[{'Key': 'a', 'Value': 'b'}]) == \
        'InvalidVolume.NotFound'
    assert error_code(bob.delete_tags, Resources=[volume_id]) == 'InvalidVolume.NotFound'
