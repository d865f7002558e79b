"""Placement group actions through real boto3 clients."""
from tests.support.client_errors import error_code


def test_create_describe_delete(world, ec2):
    created = ec2.create_placement_group(GroupName='racks', Strategy='spread', TagSpecifications=[
        {'ResourceType': 'placement-group', 'Tags': [{'Key': 'team', 'Value': 'a'}]}])['PlacementGroup']
    assert (created['GroupName'], created['Strategy'], created['State']) == ('racks', 'spread', 'available')
    assert created['GroupId'].startswith('pg-')
    ec2.create_placement_group(GroupName='close', Strategy='cluster')
    groups = ec2.describe_placement_groups()['PlacementGroups']
    assert [g['GroupName'] for g in groups] == ['close', 'racks']
    (racks,) = ec2.describe_placement_groups(GroupIds=[created['GroupId']])['PlacementGroups']
    assert racks['Tags'] == [{'Key': 'team', 'Value': 'a'}]
    assert racks['GroupArn'].endswith(f"{world.account('alice')}:placement-group/racks")
    assert [g['GroupName'] for g in ec2.describe_placement_groups(
        Filters=[{'Name': 'strategy', 'Values': ['cluster']}])['PlacementGroups']] == ['close']
    assert [g['GroupName'] for g in ec2.describe_placement_groups(
        Filters=[{'Name': 'tag:team', 'Values': ['a']}])['PlacementGroups']] == ['racks']
    ec2.delete_placement_group(GroupName='racks')
    assert [g['GroupName'] for g in ec2.describe_placement_groups()['PlacementGroups']] == ['close']


def test_refusals(world, ec2):
    ec2.create_placement_group(GroupName='busy', Strategy='cluster')
    assert error_code(ec2.create_placement_group, GroupName='busy', Strategy='cluster') == \
        'InvalidPlacementGroup.Duplicate'
    assert error_code(ec2.create_placement_group, GroupName='p', Strategy='partition') == 'InvalidParameterValue'
    assert error_code(ec2.create_placement_group, GroupName='nostrategy') == 'MissingParameter'
    assert error_code(ec2.describe_placement_groups, GroupNames=['absent']) == 'InvalidPlacementGroup.Unknown'
    assert error_code(ec2.describe_placement_groups,
                      Filters=[{'Name': 'colour', 'Values': ['x']}]) == 'InvalidParameterValue'
    ec2.run_instances(ImageId=world.image_id, MinCount=1, MaxCount=1, Placement={'GroupName': 'busy'})
    assert error_code(ec2.delete_placement_group, GroupName='busy') == 'InvalidPlacementGroup.InUse'
    bob = world.client('bob')
    assert bob.describe_placement_groups()['PlacementGroups'] == []
    assert error_code(bob.delete_placement_group, GroupName='busy') == 'InvalidPlacementGroup.Unknown'
