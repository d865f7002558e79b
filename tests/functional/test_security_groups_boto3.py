"""Security groups through boto3, and boto 2's flat parameters: defaults as on AWS, rules authorized
and revoked, membership at launch and after, deletes in order, other accounts kept out. (What the
hosts enforce is not built yet.)"""
import boto.ec2.connection
import boto.exception
import pytest
from boto.ec2.regioninfo import RegionInfo

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud

pytestmark = pytest.mark.clients


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('sg-home'), ('alice', 'bob'))
    yield live
    live.stop()


def launch(ec2, image_id, **extra):
    return ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro', **extra)['Instances'][0]


def test_the_default_group_admits_its_members_and_a_new_group_only_lets_out(server):
    ec2 = server.client('alice')
    (default,) = ec2.describe_security_groups(GroupNames=['default'])['SecurityGroups']
    assert default['IpPermissions'][0]['IpProtocol'] == '-1'
    assert default['IpPermissions'][0]['UserIdGroupPairs'][0]['GroupId'] == default['GroupId']
    assert default['IpPermissionsEgress'][0]['IpRanges'] == [{'CidrIp': '0.0.0.0/0'}]
    group_id = ec2.create_security_group(GroupName='web', Description='web servers')['GroupId']
    (web,) = ec2.describe_security_groups(GroupIds=[group_id])['SecurityGroups']
    assert web['IpPermissions'] == [] and web['IpPermissionsEgress'][0]['IpProtocol'] == '-1'
    assert web['VpcId'] == default['VpcId']
    assert error_code(ec2.create_security_group, GroupName='web', Description='again') == 'InvalidGroup.Duplicate'
    assert error_code(ec2.delete_security_group, GroupName='default') == 'CannotDelete'
    instance = launch(ec2, server.image_id)
    assert [g['GroupName'] for g in instance['SecurityGroups']] == ['default']


def test_rules_are_authorized_described_and_revoked(server):
    ec2 = server.client('alice')
    group_id = ec2.create_security_group(GroupName='ssh', Description='ssh')['GroupId']
    (default,) = ec2.describe_security_groups(GroupNames=['default'])['SecurityGroups']
    added = ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8', 'Description': 'lan'}],
         'UserIdGroupPairs': [{'GroupId': default['GroupId']}]},
        {'IpProtocol': 'icmp', 'FromPort': 8, 'ToPort': -1, 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}])
    assert len(added['SecurityGroupRules']) == 3
    assert error_code(ec2.authorize_security_group_ingress, GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}]) == \
        'InvalidPermission.Duplicate'
    for bad in ({'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 70000, 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]},
                {'IpProtocol': 'bogus', 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]},
                {'IpProtocol': 'tcp', 'FromPort': 1, 'ToPort': 2, 'IpRanges': [{'CidrIp': 'not-a-cidr'}]}):
        assert error_code(ec2.authorize_security_group_ingress, GroupId=group_id, IpPermissions=[bad]) == \
            'InvalidParameterValue', bad
    found = ec2.describe_security_groups(Filters=[{'Name': 'ip-permission.from-port', 'Values': ['22']},
                                                  {'Name': 'ip-permission.cidr', 'Values': ['10.0.0.0/8']}])
    assert [g['GroupId'] for g in found['SecurityGroups']] == [group_id]
    rules = ec2.describe_security_group_rules(Filters=[{'Name': 'group-id', 'Values': [group_id]}])[
        'SecurityGroupRules']
    assert sorted((r['IsEgress'], r['IpProtocol']) for r in rules) == [
        (False, 'icmp'), (False, 'tcp'), (False, 'tcp'), (True, '-1')]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}])
    assert error_code(ec2.revoke_security_group_ingress, GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}]) == \
        'InvalidPermission.NotFound'
    icmp = [r['SecurityGroupRuleId'] for r in rules if r['IpProtocol'] == 'icmp']
    ec2.revoke_security_group_ingress(GroupId=group_id, SecurityGroupRuleIds=icmp)
    (left,) = ec2.describe_security_groups(GroupIds=[group_id])['SecurityGroups']
    assert [(p['IpProtocol'], [u['GroupId'] for u in p['UserIdGroupPairs']]) for p in left['IpPermissions']] == \
        [('tcp', [default['GroupId']])]


def test_rules_are_modified_in_place_and_their_descriptions_updated(server):
    ec2 = server.client('alice')
    group_id = ec2.create_security_group(GroupName='modified', Description='rules to change')['GroupId']
    (rule, other) = ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]},
        {'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80, 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}])['SecurityGroupRules']
    rule_id = rule['SecurityGroupRuleId']
    ec2.modify_security_group_rules(GroupId=group_id, SecurityGroupRules=[{'SecurityGroupRuleId': rule_id, 'SecurityGroupRule': {
        'IpProtocol': 'tcp', 'FromPort': 2222, 'ToPort': 2223, 'CidrIpv4': '192.168.0.0/16', 'Description': 'moved'}}])
    (changed,) = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])['SecurityGroupRules']
    assert (changed['FromPort'], changed['ToPort'], changed['CidrIpv4'], changed['Description']) == \
        (2222, 2223, '192.168.0.0/16', 'moved')
    # Into a copy of another rule of the group; a rule of none; a malformed id; a bad port range.
    duplicate = {'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80, 'CidrIpv4': '0.0.0.0/0'}
    assert error_code(ec2.modify_security_group_rules, GroupId=group_id, SecurityGroupRules=[
        {'SecurityGroupRuleId': rule_id, 'SecurityGroupRule': duplicate}]) == 'InvalidPermission.Duplicate'
    assert error_code(ec2.modify_security_group_rules, GroupId=group_id, SecurityGroupRules=[
        {'SecurityGroupRuleId': 'sgr-00000000000000000', 'SecurityGroupRule': duplicate}]) == \
        'InvalidSecurityGroupRuleId.NotFound'
    assert error_code(ec2.modify_security_group_rules, GroupId=group_id, SecurityGroupRules=[
        {'SecurityGroupRuleId': 'rule-1', 'SecurityGroupRule': duplicate}]) == 'InvalidSecurityGroupRuleId.Malformed'
    assert error_code(ec2.modify_security_group_rules, GroupId=group_id, SecurityGroupRules=[
        {'SecurityGroupRuleId': rule_id, 'SecurityGroupRule': {**duplicate, 'ToPort': 70000}}]) == \
        'InvalidParameterValue'
    # Another account cannot change them.
    assert error_code(server.client('bob').modify_security_group_rules, GroupId=group_id, SecurityGroupRules=[
        {'SecurityGroupRuleId': rule_id, 'SecurityGroupRule': duplicate}]) == 'InvalidGroup.NotFound'

    ec2.update_security_group_rule_descriptions_ingress(GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80, 'IpRanges': [{'CidrIp': '0.0.0.0/0', 'Description': 'web'}]}])
    ec2.update_security_group_rule_descriptions_ingress(GroupId=group_id, SecurityGroupRuleDescriptions=[
        {'SecurityGroupRuleId': rule_id, 'Description': 'admin ssh'}])
    described = {r['SecurityGroupRuleId']: r.get('Description') for r in ec2.describe_security_group_rules(
        Filters=[{'Name': 'group-id', 'Values': [group_id]}])['SecurityGroupRules'] if not r['IsEgress']}
    assert described == {rule_id: 'admin ssh', other['SecurityGroupRuleId']: 'web'}
    assert error_code(ec2.update_security_group_rule_descriptions_ingress, GroupId=group_id, IpPermissions=[
        {'IpProtocol': 'udp', 'FromPort': 53, 'ToPort': 53, 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}]) == \
        'InvalidPermission.NotFound'
    ec2.delete_security_group(GroupId=group_id)


def test_membership_at_launch_and_after_and_deletes_in_order(server):
    ec2 = server.client('alice')
    group_id = ec2.create_security_group(GroupName='app', Description='app')['GroupId']
    other = ec2.create_security_group(GroupName='cache', Description='cache')['GroupId']
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 6379, 'ToPort': 6379, 'UserIdGroupPairs': [{'GroupId': group_id}]}])
    instance = launch(ec2, server.image_id, SecurityGroupIds=[group_id])
    assert [g['GroupId'] for g in instance['SecurityGroups']] == [group_id]
    assert error_code(ec2.delete_security_group, GroupId=group_id) == 'DependencyViolation'
    ec2.modify_instance_attribute(InstanceId=instance['InstanceId'], Groups=[other])
    shown = ec2.describe_instance_attribute(InstanceId=instance['InstanceId'], Attribute='groupSet')['Groups']
    assert [g['GroupId'] for g in shown] == [other]
    assert error_code(ec2.delete_security_group, GroupId=group_id) == 'DependencyViolation', 'referenced by cache'
    assert error_code(launch, ec2, server.image_id, SecurityGroups=['nonexistent']) == 'InvalidGroup.NotFound'
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])


def test_boto2_flat_parameters(server):
    credentials = server.users['bob']
    connection = boto.ec2.connection.EC2Connection(
        credentials['access_key_id'], credentials['secret_access_key'], is_secure=False, port=server.port, path='/',
        region=RegionInfo(name='reservoir-1', endpoint='127.0.0.1'))
    connection.auth_region_name, connection.auth_service_name = 'reservoir-1', 'ec2'
    connection.create_security_group('legacy', 'boto 2 group')
    assert connection.authorize_security_group(group_name='legacy', ip_protocol='tcp', from_port=80, to_port=80,
                                               cidr_ip='0.0.0.0/0')
    assert connection.authorize_security_group(group_name='legacy', src_security_group_name='default')
    (listed,) = connection.get_all_security_groups(groupnames=['legacy'])
    assert sorted((rule.ip_protocol, rule.from_port) for rule in listed.rules) == [('-1', None), ('tcp', '80')]
    assert connection.revoke_security_group(group_name='legacy', ip_protocol='tcp', from_port=80, to_port=80,
                                            cidr_ip='0.0.0.0/0')
    with pytest.raises(boto.exception.EC2ResponseError) as refused:
        connection.delete_security_group('default')
    assert refused.value.error_code == 'CannotDelete'
    assert connection.delete_security_group('legacy')


def test_another_accounts_groups_are_out_of_reach(server):
    alice, bob = server.client('alice'), server.client('bob')
    group_id = alice.create_security_group(GroupName='private', Description='x')['GroupId']
    (bobs_default,) = bob.describe_security_groups(GroupNames=['default'])['SecurityGroups']
    for call in (lambda: bob.describe_security_groups(GroupIds=[group_id]),
                 lambda: bob.delete_security_group(GroupId=group_id),
                 lambda: bob.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
                     {'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}]),
                 lambda: bob.authorize_security_group_ingress(GroupId=bobs_default['GroupId'], IpPermissions=[
                     {'IpProtocol': '-1', 'UserIdGroupPairs': [{'GroupId': group_id}]}]),
                 lambda: launch(bob, server.image_id, SecurityGroupIds=[group_id])):
        assert error_code(call) == 'InvalidGroup.NotFound'
    assert group_id not in [g['GroupId'] for g in bob.describe_security_groups()['SecurityGroups']]
    assert error_code(bob.describe_security_groups, GroupIds=['sg-x']) == 'InvalidGroupId.Malformed'


def test_a_vpc_goes_with_its_default_group_but_not_with_others(server):
    ec2 = server.client('bob')
    vpc_id = ec2.create_vpc(CidrBlock='10.95.0.0/16')['Vpc']['VpcId']
    group_id = ec2.create_security_group(GroupName='inner', Description='x', VpcId=vpc_id)['GroupId']
    in_vpc = ec2.describe_security_groups(Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]}])['SecurityGroups']
    assert sorted(g['GroupName'] for g in in_vpc) == ['default', 'inner']
    assert error_code(ec2.delete_vpc, VpcId=vpc_id) == 'DependencyViolation'
    ec2.delete_security_group(GroupId=group_id)
    ec2.delete_vpc(VpcId=vpc_id)
    assert all(g['VpcId'] != vpc_id for g in ec2.describe_security_groups()['SecurityGroups'])
