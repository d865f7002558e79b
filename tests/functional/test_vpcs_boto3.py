"""VPCs and subnets through boto3: the default VPC tools expect, an account's own VPCs, launching into
them, filters, paging, the order deletes must follow, and other accounts kept out."""
import time

import pytest

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud

pytestmark = pytest.mark.clients


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('vpc-home'), ('alice', 'bob', 'carol'), hosts=4)
    yield live
    live.stop()


def wait_for_states(ec2, ids, states, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {i['State']['Name'] for r in ec2.describe_instances(InstanceIds=ids)['Reservations']
                 for i in r['Instances']}
        if found <= states:
            return
        time.sleep(0.2)
    raise AssertionError(f'instances still {found}')


def launch(ec2, image_id, **extra):
    return ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                             **extra)['Instances'][0]


def test_every_account_has_a_default_vpc_with_a_default_subnet_per_zone(server):
    ec2 = server.client('alice')
    (vpc,) = ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs']
    assert vpc['CidrBlock'] == '172.31.0.0/16' and vpc['State'] == 'available' and vpc['IsDefault']
    assert vpc['OwnerId'] == server.users['alice']['account_id']
    subnets = ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [vpc['VpcId']]}])['Subnets']
    zones = [zone['ZoneName'] for zone in ec2.describe_availability_zones()['AvailabilityZones']]
    assert sorted(subnet['AvailabilityZone'] for subnet in subnets) == sorted(zones)
    assert all(subnet['DefaultForAz'] and subnet['CidrBlock'].endswith('/20') for subnet in subnets)
    assert {subnet['AvailableIpAddressCount'] for subnet in subnets} == {4091}   # 4096 less AWS's five
    attributes = ec2.describe_account_attributes(AttributeNames=['default-vpc'])['AccountAttributes']
    assert attributes[0]['AttributeValues'] == [{'AttributeValue': vpc['VpcId']}]


def test_a_launch_naming_no_subnet_lands_in_the_default_subnet_of_its_zone(server):
    ec2 = server.client('alice')
    zone = ec2.describe_availability_zones()['AvailabilityZones'][-1]['ZoneName']
    instance = launch(ec2, server.image_id, Placement={'AvailabilityZone': zone})
    (subnet,) = ec2.describe_subnets(SubnetIds=[instance['SubnetId']])['Subnets']
    assert subnet['DefaultForAz'] and subnet['AvailabilityZone'] == zone
    assert instance['VpcId'] == subnet['VpcId']
    assert instance['PrivateIpAddress'].startswith(subnet['CidrBlock'].rsplit('.', 2)[0])
    assert int(instance['PrivateIpAddress'].rsplit('.', 1)[1]) >= 4, 'AWS reserves .1 to .3'
    (after,) = ec2.describe_subnets(SubnetIds=[subnet['SubnetId']])['Subnets']
    assert after['AvailableIpAddressCount'] == subnet['AvailableIpAddressCount']
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])


def test_a_vpc_flow_create_launch_describe_and_delete_in_order(server):
    ec2 = server.client('bob')
    vpc = ec2.create_vpc(CidrBlock='10.20.0.0/16', TagSpecifications=[
        {'ResourceType': 'vpc', 'Tags': [{'Key': 'Name', 'Value': 'flow'}]}])['Vpc']
    vpc_id = vpc['VpcId']
    assert vpc['Tags'] == [{'Key': 'Name', 'Value': 'flow'}] and not vpc['IsDefault']
    zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock='10.20.1.0/24', AvailabilityZone=zone)['Subnet']
    assert subnet['AvailableIpAddressCount'] == 251 and subnet['AvailabilityZone'] == zone
    instance = launch(ec2, server.image_id, NetworkInterfaces=[{'DeviceIndex': 0, 'SubnetId': subnet['SubnetId']}])
    assert instance['SubnetId'] == subnet['SubnetId'] and instance['VpcId'] == vpc_id
    assert instance['PrivateIpAddress'] == '10.20.1.4'
    assert instance['Placement']['AvailabilityZone'] == zone
    pinned = launch(ec2, server.image_id, SubnetId=subnet['SubnetId'], PrivateIpAddress='10.20.1.77')
    assert pinned['PrivateIpAddress'] == '10.20.1.77'
    assert error_code(lambda: launch(ec2, server.image_id, SubnetId=subnet['SubnetId'], PrivateIpAddress='10.20.1.77')) == 'InvalidIPAddress.InUse'

    found = ec2.describe_vpcs(Filters=[{'Name': 'tag:Name', 'Values': ['fl*']}, {'Name': 'cidr', 'Values': ['10.20.0.0/16']}])
    assert [v['VpcId'] for v in found['Vpcs']] == [vpc_id]
    in_vpc = ec2.describe_instances(Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]}])
    assert sorted(i['InstanceId'] for r in in_vpc['Reservations'] for i in r['Instances']) == \
        sorted([instance['InstanceId'], pinned['InstanceId']])

    for delete, code in ((lambda: ec2.delete_vpc(VpcId=vpc_id), 'DependencyViolation'),
                         (lambda: ec2.delete_subnet(SubnetId=subnet['SubnetId']), 'DependencyViolation')):
        assert error_code(lambda: delete()) == code
    ids = [instance['InstanceId'], pinned['InstanceId']]
    ec2.terminate_instances(InstanceIds=ids)
    wait_for_states(ec2, ids, {'terminated'})
    ec2.delete_subnet(SubnetId=subnet['SubnetId'])
    ec2.delete_vpc(VpcId=vpc_id)
    assert error_code(lambda: ec2.describe_vpcs(VpcIds=[vpc_id])) == 'InvalidVpcID.NotFound'


def test_vpcs_may_overlap_but_subnets_of_one_vpc_may_not(server):
    ec2 = server.client('carol')
    first = ec2.create_vpc(CidrBlock='10.30.0.0/16')['Vpc']['VpcId']
    second = ec2.create_vpc(CidrBlock='10.30.0.0/16')['Vpc']['VpcId']
    ec2.create_subnet(VpcId=first, CidrBlock='10.30.0.0/20')
    ec2.create_subnet(VpcId=second, CidrBlock='10.30.0.0/20')
    for cidr, code in (('10.30.8.0/24', 'InvalidSubnet.Conflict'), ('10.31.0.0/24', 'InvalidSubnet.Range'),
                       ('10.30.0.0/28', 'InvalidSubnet.Conflict'), ('10.30.64.0/30', 'InvalidSubnet.Range'),
                       ('10.30.64.5/24', 'InvalidParameterValue'), ('nonsense', 'InvalidParameterValue')):
        assert error_code(lambda: ec2.create_subnet(VpcId=first, CidrBlock=cidr)) == code, cidr
    for cidr, code in (('10.0.0.0/8', 'InvalidVpc.Range'), ('10.0.0.0/29', 'InvalidVpc.Range'),
                       ('300.0.0.0/16', 'InvalidParameterValue')):
        assert error_code(lambda: ec2.create_vpc(CidrBlock=cidr)) == code, cidr


def test_dns_attributes_are_kept_and_checked(server):
    ec2 = server.client('carol')
    vpc_id = ec2.create_vpc(CidrBlock='10.40.0.0/16')['Vpc']['VpcId']
    answer = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute='enableDnsHostnames')
    assert answer['EnableDnsHostnames'] == {'Value': False}
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={'Value': True})
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute='enableDnsHostnames')['EnableDnsHostnames'] == \
        {'Value': True}
    assert error_code(lambda: ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={'Value': False})) == 'InvalidParameterValue'


def test_paging_walks_every_subnet_once(server):
    ec2 = server.client('carol')
    vpc_id = ec2.create_vpc(CidrBlock='10.50.0.0/16')['Vpc']['VpcId']
    made = {ec2.create_subnet(VpcId=vpc_id, CidrBlock=f'10.50.{n}.0/24')['Subnet']['SubnetId'] for n in range(12)}
    seen = []
    for page in ec2.get_paginator('describe_subnets').paginate(
            Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]}], PaginationConfig={'PageSize': 5}):
        seen += [subnet['SubnetId'] for subnet in page['Subnets']]
    assert sorted(seen) == sorted(made)


def test_another_accounts_vpcs_and_subnets_are_out_of_reach(server):
    alice, bob = server.client('alice'), server.client('bob')
    vpc_id = alice.create_vpc(CidrBlock='10.60.0.0/16')['Vpc']['VpcId']
    subnet_id = alice.create_subnet(VpcId=vpc_id, CidrBlock='10.60.0.0/24')['Subnet']['SubnetId']
    attempts = {
        'InvalidVpcID.NotFound': [lambda: bob.describe_vpcs(VpcIds=[vpc_id]), lambda: bob.delete_vpc(VpcId=vpc_id),
                                  lambda: bob.create_subnet(VpcId=vpc_id, CidrBlock='10.60.1.0/24'),
                                  lambda: bob.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={'Value': True}),
                                  lambda: bob.create_tags(Resources=[vpc_id], Tags=[{'Key': 'k', 'Value': 'v'}])],
        'InvalidSubnetID.NotFound': [lambda: bob.describe_subnets(SubnetIds=[subnet_id]),
                                     lambda: bob.delete_subnet(SubnetId=subnet_id),
                                     lambda: launch(bob, server.image_id, SubnetId=subnet_id)],
    }
    for code, calls in attempts.items():
        for call in calls:
            assert error_code(lambda: call()) == code
    assert vpc_id not in [v['VpcId'] for v in bob.describe_vpcs()['Vpcs']]
    assert subnet_id not in [s['SubnetId'] for s in bob.describe_subnets()['Subnets']]
    assert alice.describe_subnets(SubnetIds=[subnet_id])['Subnets'][0]['VpcId'] == vpc_id


@pytest.mark.parametrize('call, code', [
    (lambda ec2: ec2.describe_vpcs(VpcIds=['vpc-nothex']), 'InvalidVpcID.Malformed'),
    (lambda ec2: ec2.describe_vpcs(VpcIds=['vpc-0123456789abcdef0']), 'InvalidVpcID.NotFound'),
    (lambda ec2: ec2.describe_subnets(SubnetIds=['subnet-x']), 'InvalidSubnetID.Malformed'),
    (lambda ec2: ec2.delete_subnet(SubnetId='subnet-0123456789abcdef0'), 'InvalidSubnetID.NotFound'),
    (lambda ec2: ec2.describe_vpc_attribute(VpcId='vpc-0123456789abcdef0', Attribute='enableDnsSupport'),
     'InvalidVpcID.NotFound'),
])
def test_malformed_and_unknown_ids_get_ec2s_codes(server, call, code):
    assert error_code(lambda: call(server.client('carol'))) == code


def test_what_cannot_be_honoured_is_refused_not_ignored(server):
    ec2 = server.client('carol')
    subnet_id = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']}])['Subnets'][0]['SubnetId']
    for extra, code in (({'SecurityGroups': ['web']}, 'InvalidGroup.NotFound'),
                        ({'SecurityGroupIds': ['sg-0123456789abcdef0']}, 'InvalidGroup.NotFound'),
                        ({'SubnetId': subnet_id, 'NetworkInterfaces': [{'DeviceIndex': 0, 'SubnetId': subnet_id}]},
                         'InvalidParameterCombination'),
                        ({'NetworkInterfaces': [{'DeviceIndex': 0, 'SubnetId': subnet_id,
                                                 'AssociatePublicIpAddress': True},
                                                {'DeviceIndex': 1, 'SubnetId': subnet_id}]},
                         'InvalidParameterCombination'),
                        ({'TagSpecifications': [{'ResourceType': 'snapshot', 'Tags': [{'Key': 'a', 'Value': 'b'}]}]},
                         'InvalidParameterValue')):
        assert error_code(lambda: launch(ec2, server.image_id, **extra)) == code, extra
    launched = launch(ec2, server.image_id, SecurityGroups=['default'])
    ec2.terminate_instances(InstanceIds=[launched['InstanceId']])


def test_a_deleted_default_vpc_stays_deleted_until_created_again(server):
    ec2 = server.client('carol')
    zones = len(ec2.describe_availability_zones()['AvailabilityZones'])
    default = ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs'][0]['VpcId']
    for subnet in ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [default]}])['Subnets']:
        ec2.delete_subnet(SubnetId=subnet['SubnetId'])
    (gateway,) = ec2.describe_internet_gateways(Filters=[{'Name': 'attachment.vpc-id', 'Values': [default]}])[
        'InternetGateways']
    assert error_code(ec2.delete_vpc, VpcId=default) == 'DependencyViolation', 'its gateway is still attached'
    ec2.detach_internet_gateway(InternetGatewayId=gateway['InternetGatewayId'], VpcId=default)
    ec2.delete_internet_gateway(InternetGatewayId=gateway['InternetGatewayId'])
    ec2.delete_vpc(VpcId=default)
    assert not ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs']
    assert error_code(lambda: launch(ec2, server.image_id)) == 'VPCIdNotSpecified'
    created = ec2.create_default_vpc()['Vpc']
    assert created['IsDefault'] and created['VpcId'] != default
    assert len(ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [created['VpcId']]}])['Subnets']) == zones
    assert error_code(lambda: ec2.create_default_vpc()) == 'DefaultVpcAlreadyExists'


def test_public_ips_at_launch_come_from_the_pool_and_go_at_stop(server):
    ec2 = server.client('carol')
    vpc_id = ec2.create_vpc(CidrBlock='10.90.0.0/16')['Vpc']['VpcId']
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock='10.90.1.0/24')['Subnet']['SubnetId']
    ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={'Value': True})
    assert ec2.describe_subnets(SubnetIds=[subnet_id])['Subnets'][0]['MapPublicIpOnLaunch'] is True
    unrouted = launch(ec2, server.image_id, SubnetId=subnet_id)
    assert 'PublicIpAddress' not in unrouted, 'no internet gateway: no public address'
    gateway = ec2.create_internet_gateway()['InternetGateway']['InternetGatewayId']
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    ec2.create_route(RouteTableId=f'rtb-{vpc_id[4:]}', DestinationCidrBlock='0.0.0.0/0', GatewayId=gateway)
    mapped = launch(ec2, server.image_id, SubnetId=subnet_id)
    asked = launch(ec2, server.image_id, NetworkInterfaces=[{'DeviceIndex': 0, 'SubnetId': subnet_id,
                                                             'AssociatePublicIpAddress': False}])
    assert mapped.get('PublicIpAddress') and 'PublicIpAddress' not in asked
    assert mapped['PublicIpAddress'] not in [a['PublicIp'] for a in ec2.describe_addresses()['Addresses']], \
        'a public IP given at launch is not one of the account\'s elastic IPs'
    ids = [unrouted['InstanceId'], mapped['InstanceId'], asked['InstanceId']]
    wait_for_states(ec2, ids, {'running'})
    ec2.stop_instances(InstanceIds=[mapped['InstanceId']])
    wait_for_states(ec2, [mapped['InstanceId']], {'stopped'})
    stopped = ec2.describe_instances(InstanceIds=[mapped['InstanceId']])['Reservations'][0]['Instances'][0]
    assert 'PublicIpAddress' not in stopped, 'released at stop, as on AWS'
    ec2.start_instances(InstanceIds=[mapped['InstanceId']])
    started = ec2.describe_instances(InstanceIds=[mapped['InstanceId']])['Reservations'][0]['Instances'][0]
    assert started.get('PublicIpAddress'), 'a new one at start'
    allocation = ec2.allocate_address(Domain='vpc')
    ec2.associate_address(AllocationId=allocation['AllocationId'], InstanceId=mapped['InstanceId'])
    shown = ec2.describe_instances(InstanceIds=[mapped['InstanceId']])['Reservations'][0]['Instances'][0]
    assert shown['PublicIpAddress'] == allocation['PublicIp'], 'an elastic IP replaces the launch one'
    ec2.disassociate_address(PublicIp=allocation['PublicIp'])
    ec2.release_address(AllocationId=allocation['AllocationId'])
    ec2.terminate_instances(InstanceIds=ids)
