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


@pytest.mark.parametrize('create', ['run_instances', 'allocate_address', 'create_placement_group', 'copy_image'])
def test_a_tag_without_a_key_at_creation_is_refused_not_a_500(world, ec2, create):
    arguments = {
        'run_instances': dict(ImageId=world.image_id, MinCount=1, MaxCount=1),
        'allocate_address': dict(Domain='vpc'),
        'create_placement_group': dict(GroupName='g', Strategy='spread'),
        'copy_image': dict(SourceImageId=world.image_id, SourceRegion='reservoir-1', Name='copy'),
    }[create]
    resource_type = {'run_instances': 'instance', 'allocate_address': 'elastic-ip',
                     'create_placement_group': 'placement-group', 'copy_image': 'image'}[create]
    keyless = [{'ResourceType': resource_type, 'Tags': [{'Value': 'orphan'}]}]
    assert error_code(getattr(ec2, create), TagSpecifications=keyless, **arguments) == 'InvalidParameterValue'
    many = [{'ResourceType': resource_type, 'Tags': [{'Key': f'k{n}', 'Value': ''} for n in range(51)]}]
    assert error_code(getattr(ec2, create), TagSpecifications=many, **arguments) == 'TagLimitExceeded'
