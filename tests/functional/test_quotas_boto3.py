"""Quotas as a tenant meets them through boto3, and as an administrator sets them with `reservoir`."""
import json

import pytest

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud

pytestmark = pytest.mark.clients


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('quota-home'), ('alice', 'bob'), hosts=2,
                           extra_env={'RESERVOIR_QUOTAS_INSTANCES': '2', 'RESERVOIR_QUOTAS_VCPUS': '8',
                                      'RESERVOIR_QUOTAS_ELASTIC_IPS': '1',
                                      'RESERVOIR_SECURITY_GROUPS_GROUPS_PER_VPC': '3',
                                      'RESERVOIR_SECURITY_GROUPS_RULES_PER_GROUP': '2',
                                      'RESERVOIR_SECURITY_GROUPS_GROUPS_PER_INTERFACE': '1'})
    yield live
    live.stop()


def attributes(client, *names):
    answer = client.describe_account_attributes(**({'AttributeNames': list(names)} if names else {}))
    return {a['AttributeName']: [v['AttributeValue'] for v in a['AttributeValues']]
            for a in answer['AccountAttributes']}


def test_account_attributes_report_the_quotas(server):
    ec2 = server.client('alice')
    default_vpc = ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs'][0]['VpcId']
    assert attributes(ec2) == {'supported-platforms': ['VPC'], 'default-vpc': [default_vpc], 'max-instances': ['2'],
                               'vpc-max-security-groups-per-interface': ['1'], 'max-elastic-ips': ['1'],
                               'vpc-max-elastic-ips': ['1']}
    assert attributes(ec2, 'default-vpc') == {'default-vpc': [default_vpc]}
    assert error_code(ec2.describe_account_attributes, AttributeNames=['max-everything']) == 'InvalidParameterValue'


def test_a_tenant_meets_its_quotas_and_an_administrator_raises_them(server):
    ec2 = server.client('bob')
    launched = ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=5)['Instances']
    assert len(launched) == 2
    assert error_code(ec2.run_instances, ImageId=server.image_id, MinCount=1, MaxCount=1) == 'InstanceLimitExceeded'
    ec2.allocate_address(Domain='vpc')
    assert error_code(ec2.allocate_address, Domain='vpc') == 'AddressLimitExceeded'
    assert len(ec2.describe_addresses()['Addresses']) == 1

    shown = json.loads(server.admin('user', 'set-quota', 'bob', '--instances', '3', '--elastic-ips', '2', '--json'))
    assert {row['resource']: (row['quota'], row['used']) for row in shown}['instances'] == (3, 2)
    assert attributes(ec2, 'max-instances', 'max-elastic-ips') == {'max-instances': ['3'], 'max-elastic-ips': ['2']}
    assert len(ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1)['Instances']) == 1
    ec2.allocate_address(Domain='vpc')
    # Another account keeps the configured quota.
    assert attributes(server.client('alice'), 'max-instances') == {'max-instances': ['2']}
    server.admin('user', 'set-quota', 'bob', '--instances', 'default')
    assert attributes(ec2, 'max-instances') == {'max-instances': ['2']}


def test_security_group_limits_come_from_configuration(server):
    ec2 = server.client('bob')
    first = ec2.create_security_group(GroupName='one', Description='x')['GroupId']
    second = ec2.create_security_group(GroupName='two', Description='x')['GroupId']
    # With the default group, three groups fill the VPC.
    assert error_code(ec2.create_security_group, GroupName='three', Description='x') == 'SecurityGroupLimitExceeded'
    ec2.authorize_security_group_ingress(GroupId=first, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]},
        {'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}])
    assert error_code(ec2.authorize_security_group_ingress, GroupId=first, IpPermissions=[
        {'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 443, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}]) == \
        'RulesPerSecurityGroupLimitExceeded'
    subnet_id = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']}])['Subnets'][0]['SubnetId']
    assert error_code(ec2.create_network_interface, SubnetId=subnet_id, Groups=[first, second]) == \
        'SecurityGroupsPerInterfaceLimitExceeded'
