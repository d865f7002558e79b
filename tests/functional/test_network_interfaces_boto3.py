"""Network interfaces through boto3: every instance's eth0 is one, launches with several on several
subnets, interfaces made, attached, detached and deleted, secondary addresses, other accounts kept out."""
import functools

import pytest

from tests.support.client_errors import error_code
from tests.support.server import simulated_cloud
from tests.support import waiting

pytestmark = pytest.mark.clients

# Attachments are carried out by the worker within a poll or two.
wait_for = functools.partial(waiting.wait_for, timeout=30)


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('eni-home'), ('alice', 'bob'), hosts=2)
    yield live
    live.stop()


@pytest.fixture(scope='module')
def network(server):
    """Alice's VPC with two subnets in the first zone."""
    ec2 = server.client('alice')
    zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
    vpc_id = ec2.create_vpc(CidrBlock='10.70.0.0/16')['Vpc']['VpcId']
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f'10.70.{n}.0/24', AvailabilityZone=zone)['Subnet']['SubnetId']
               for n in (1, 2)]
    return {'vpc': vpc_id, 'zone': zone, 'subnets': subnets}


def instance_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]


def test_an_instance_launched_on_two_subnets_has_two_interfaces(server, network):
    ec2 = server.client('alice')
    first, second = network['subnets']
    (instance,) = ec2.run_instances(
        ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
        NetworkInterfaces=[{'DeviceIndex': 0, 'SubnetId': first}, {'DeviceIndex': 1, 'SubnetId': second,
                                                                  'PrivateIpAddress': '10.70.2.50'}])['Instances']
    interfaces = sorted(instance['NetworkInterfaces'], key=lambda n: n['Attachment']['DeviceIndex'])
    assert [n['SubnetId'] for n in interfaces] == [first, second]
    assert interfaces[1]['PrivateIpAddress'] == '10.70.2.50' and interfaces[1]['MacAddress'] == '02:00:0a:46:02:32'
    assert instance['PrivateIpAddress'] == interfaces[0]['PrivateIpAddress']
    assert all(n['NetworkInterfaceId'].startswith('eni-') and n['VpcId'] == network['vpc'] for n in interfaces)
    listed = ec2.describe_network_interfaces(Filters=[{'Name': 'attachment.instance-id',
                                                       'Values': [instance['InstanceId']]}])['NetworkInterfaces']
    assert sorted(n['NetworkInterfaceId'] for n in listed) == sorted(n['NetworkInterfaceId'] for n in interfaces)
    assert {n['Status'] for n in listed} == {'in-use'}
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])
    wait_for(lambda: not ec2.describe_network_interfaces(Filters=[
        {'Name': 'attachment.instance-id', 'Values': [instance['InstanceId']]}])['NetworkInterfaces'])


def test_interfaces_of_another_vpc_or_a_gap_in_device_indexes_are_refused(server, network):
    ec2 = server.client('alice')
    default = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']},
                                            {'Name': 'availability-zone', 'Values': [network['zone']]}])['Subnets'][0]
    launch = dict(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro')
    assert error_code(ec2.run_instances, **launch, NetworkInterfaces=[
        {'DeviceIndex': 0, 'SubnetId': network['subnets'][0]},
        {'DeviceIndex': 1, 'SubnetId': default['SubnetId']}]) == 'InvalidParameterCombination'
    assert error_code(ec2.run_instances, **launch, NetworkInterfaces=[
        {'DeviceIndex': 0, 'SubnetId': network['subnets'][0]},
        {'DeviceIndex': 2, 'SubnetId': network['subnets'][1]}]) == 'InvalidParameterValue'


def test_an_interface_is_made_attached_detached_and_deleted(server, network):
    ec2 = server.client('alice')
    first, second = network['subnets']
    (instance,) = ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    SubnetId=first)['Instances']
    made = ec2.create_network_interface(SubnetId=second, Description='data', TagSpecifications=[
        {'ResourceType': 'network-interface', 'Tags': [{'Key': 'role', 'Value': 'data'}]}])['NetworkInterface']
    eni = made['NetworkInterfaceId']
    assert (made['Status'], made['Description'], made['TagSet']) == ('available', 'data', [{'Key': 'role', 'Value': 'data'}])
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance['InstanceId'],
                                              DeviceIndex=1)['AttachmentId']
    wait_for(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])['NetworkInterfaces'][0]
             .get('Attachment', {}).get('Status') == 'attached')
    assert eni in [n['NetworkInterfaceId'] for n in instance_of(ec2, instance['InstanceId'])['NetworkInterfaces']]
    assert error_code(ec2.delete_network_interface, NetworkInterfaceId=eni) == 'InvalidNetworkInterface.InUse'
    assert error_code(ec2.delete_subnet, SubnetId=second) == 'DependencyViolation'
    eth0 = instance['NetworkInterfaces'][0]['Attachment']['AttachmentId']
    assert error_code(ec2.detach_network_interface, AttachmentId=eth0) == 'OperationNotPermitted'

    ec2.detach_network_interface(AttachmentId=attachment)
    wait_for(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])['NetworkInterfaces'][0]['Status']
             == 'available')
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={'Value': False})
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])['NetworkInterfaces'][0]
    assert described['SourceDestCheck'] is False
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert error_code(ec2.describe_network_interfaces, NetworkInterfaceIds=[eni]) == \
        'InvalidNetworkInterfaceID.NotFound'
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])


def test_secondary_addresses_are_leased_and_returned(server, network):
    ec2 = server.client('alice')
    eni = ec2.create_network_interface(SubnetId=network['subnets'][1], PrivateIpAddress='10.70.2.20')[
        'NetworkInterface']['NetworkInterfaceId']
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=['10.70.2.21'])
    counted = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=2)
    extra = [a['PrivateIpAddress'] for a in counted['AssignedPrivateIpAddresses']]
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])['NetworkInterfaces'][0]
    addresses = {a['PrivateIpAddress']: a['Primary'] for a in described['PrivateIpAddresses']}
    assert addresses == {'10.70.2.20': True, '10.70.2.21': False, **{a: False for a in extra}}
    assert error_code(ec2.assign_private_ip_addresses, NetworkInterfaceId=eni,
                      PrivateIpAddresses=['10.70.2.21']) == 'InvalidIPAddress.InUse'
    assert error_code(ec2.unassign_private_ip_addresses, NetworkInterfaceId=eni,
                      PrivateIpAddresses=['10.70.2.20']) == 'InvalidParameterValue'
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=['10.70.2.21', *extra])
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])['NetworkInterfaces'][0]
    assert [a['PrivateIpAddress'] for a in described['PrivateIpAddresses']] == ['10.70.2.20']
    ec2.delete_network_interface(NetworkInterfaceId=eni)


def test_another_accounts_interfaces_are_out_of_reach(server, network):
    alice, bob = server.client('alice'), server.client('bob')
    eni = alice.create_network_interface(SubnetId=network['subnets'][0])['NetworkInterface']['NetworkInterfaceId']
    (theirs,) = bob.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro')['Instances']
    for call in (lambda: bob.describe_network_interfaces(NetworkInterfaceIds=[eni]),
                 lambda: bob.delete_network_interface(NetworkInterfaceId=eni),
                 lambda: bob.attach_network_interface(NetworkInterfaceId=eni, InstanceId=theirs['InstanceId'],
                                                      DeviceIndex=1),
                 lambda: bob.modify_network_interface_attribute(NetworkInterfaceId=eni, Description={'Value': 'x'}),
                 lambda: bob.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=1),
                 lambda: bob.create_tags(Resources=[eni], Tags=[{'Key': 'k', 'Value': 'v'}])):
        assert error_code(call) == 'InvalidNetworkInterfaceID.NotFound'
    assert error_code(bob.create_network_interface, SubnetId=network['subnets'][0]) == 'InvalidSubnetID.NotFound'
    assert eni not in [n['NetworkInterfaceId'] for n in bob.describe_network_interfaces()['NetworkInterfaces']]
    (mine,) = alice.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                  SubnetId=network['subnets'][0])['Instances']
    assert error_code(alice.attach_network_interface, NetworkInterfaceId=eni, InstanceId=theirs['InstanceId'],
                      DeviceIndex=1) == 'InvalidInstanceID.NotFound'
    for ec2, instance in ((alice, mine), (bob, theirs)):
        ec2.terminate_instances(InstanceIds=[instance['InstanceId']])
    alice.delete_network_interface(NetworkInterfaceId=eni)


@pytest.mark.parametrize('call, code', [
    (lambda ec2: ec2.describe_network_interfaces(NetworkInterfaceIds=['eni-x']), 'InvalidNetworkInterfaceID.Malformed'),
    (lambda ec2: ec2.delete_network_interface(NetworkInterfaceId='eni-0123456789abcdef0'),
     'InvalidNetworkInterfaceID.NotFound'),
    (lambda ec2: ec2.detach_network_interface(AttachmentId='eni-attach-0123456789abcdef0'),
     'InvalidAttachmentID.NotFound'),
    (lambda ec2: ec2.detach_network_interface(AttachmentId='attach'), 'InvalidAttachmentID.Malformed'),
])
def test_malformed_and_unknown_ids_get_ec2s_codes(server, call, code):
    assert error_code(call, server.client('alice')) == code


def test_a_vpc_takes_elastic_ips_only_with_a_routed_internet_gateway(server, network):
    ec2 = server.client('alice')
    (default,) = ec2.describe_vpcs(Filters=[{'Name': 'is-default', 'Values': ['true']}])['Vpcs']
    (default_gateway,) = ec2.describe_internet_gateways(
        Filters=[{'Name': 'attachment.vpc-id', 'Values': [default['VpcId']]}])['InternetGateways']
    (default_table,) = ec2.describe_route_tables(Filters=[{'Name': 'vpc-id', 'Values': [default['VpcId']]}])[
        'RouteTables']
    assert {(r['DestinationCidrBlock'], r['GatewayId']) for r in default_table['Routes']} == {
        ('172.31.0.0/16', 'local'), ('0.0.0.0/0', default_gateway['InternetGatewayId'])}

    (instance,) = ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    SubnetId=network['subnets'][0])['Instances']
    allocation = ec2.allocate_address(Domain='vpc')['AllocationId']
    associate = dict(AllocationId=allocation, InstanceId=instance['InstanceId'])
    assert error_code(ec2.associate_address, **associate) == 'Gateway.NotAttached'
    gateway = ec2.create_internet_gateway()['InternetGateway']['InternetGatewayId']
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=network['vpc'])
    assert error_code(ec2.associate_address, **associate) == 'Gateway.NotAttached', 'no route to the gateway yet'
    (table,) = ec2.describe_route_tables(Filters=[{'Name': 'vpc-id', 'Values': [network['vpc']]}])['RouteTables']
    ec2.create_route(RouteTableId=table['RouteTableId'], DestinationCidrBlock='0.0.0.0/0', GatewayId=gateway)
    assert error_code(ec2.create_route, RouteTableId=table['RouteTableId'], DestinationCidrBlock='0.0.0.0/0',
                      GatewayId=gateway) == 'RouteAlreadyExists'
    association = ec2.associate_address(**associate)['AssociationId']
    assert instance_of(ec2, instance['InstanceId'])['PublicIpAddress']
    assert error_code(ec2.detach_internet_gateway, InternetGatewayId=gateway, VpcId=network['vpc']) == \
        'DependencyViolation'
    assert error_code(ec2.delete_internet_gateway, InternetGatewayId=gateway) == 'DependencyViolation'
    ec2.disassociate_address(AssociationId=association)
    assert 'PublicIpAddress' not in instance_of(ec2, instance['InstanceId'])
    ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=network['vpc'])
    (table,) = ec2.describe_route_tables(RouteTableIds=[table['RouteTableId']])['RouteTables']
    assert [r['GatewayId'] for r in table['Routes']] == ['local']
    ec2.delete_internet_gateway(InternetGatewayId=gateway)
    ec2.release_address(AllocationId=allocation)
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])


def test_an_elastic_ip_follows_its_interface_from_instance_to_instance(server):
    ec2 = server.client('bob')
    zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
    (subnet,) = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']},
                                              {'Name': 'availability-zone', 'Values': [zone]}])['Subnets']
    first, second = (ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                       SubnetId=subnet['SubnetId'])['Instances'][0]['InstanceId'] for _ in range(2))
    eni = ec2.create_network_interface(SubnetId=subnet['SubnetId'])['NetworkInterface']
    secondary = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni['NetworkInterfaceId'],
                                                SecondaryPrivateIpAddressCount=1)['AssignedPrivateIpAddresses'][0][
        'PrivateIpAddress']
    allocation = ec2.allocate_address(Domain='vpc')
    ec2.associate_address(AllocationId=allocation['AllocationId'], NetworkInterfaceId=eni['NetworkInterfaceId'],
                          PrivateIpAddress=secondary)
    (address,) = ec2.describe_addresses(AllocationIds=[allocation['AllocationId']])['Addresses']
    assert (address['NetworkInterfaceId'], address['PrivateIpAddress']) == (eni['NetworkInterfaceId'], secondary)
    assert 'InstanceId' not in address
    for instance_id in (first, second):
        attachment = ec2.attach_network_interface(NetworkInterfaceId=eni['NetworkInterfaceId'],
                                                  InstanceId=instance_id, DeviceIndex=1)['AttachmentId']
        wait_for(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[eni['NetworkInterfaceId']])[
            'NetworkInterfaces'][0].get('Attachment', {}).get('Status') == 'attached')
        (address,) = ec2.describe_addresses(AllocationIds=[allocation['AllocationId']])['Addresses']
        assert address['InstanceId'] == instance_id
        shown = {n['NetworkInterfaceId']: n for n in instance_of(ec2, instance_id)['NetworkInterfaces']}
        publics = {a['PrivateIpAddress']: a.get('Association', {}).get('PublicIp')
                   for a in shown[eni['NetworkInterfaceId']]['PrivateIpAddresses']}
        assert publics[secondary] == allocation['PublicIp']
        assert 'PublicIpAddress' not in instance_of(ec2, instance_id), 'only eth0 gives the instance its public IP'
        ec2.detach_network_interface(AttachmentId=attachment)
        wait_for(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[eni['NetworkInterfaceId']])[
            'NetworkInterfaces'][0]['Status'] == 'available')
    assert error_code(ec2.release_address, AllocationId=allocation['AllocationId']) == 'InvalidIPAddress.InUse'
    ec2.delete_network_interface(NetworkInterfaceId=eni['NetworkInterfaceId'])
    (address,) = ec2.describe_addresses(AllocationIds=[allocation['AllocationId']])['Addresses']
    assert 'AssociationId' not in address and 'NetworkInterfaceId' not in address
    ec2.release_address(AllocationId=allocation['AllocationId'])
    ec2.terminate_instances(InstanceIds=[first, second])


def test_paging_walks_every_interface_once(server, network):
    ec2 = server.client('alice')
    made = {ec2.create_network_interface(SubnetId=network['subnets'][1])['NetworkInterface']['NetworkInterfaceId']
            for _ in range(12)}
    seen = []
    for page in ec2.get_paginator('describe_network_interfaces').paginate(PaginationConfig={'PageSize': 5}):
        seen += [interface['NetworkInterfaceId'] for interface in page['NetworkInterfaces']]
    assert len(seen) == len(set(seen)) and made <= set(seen)
    for eni in made:
        ec2.delete_network_interface(NetworkInterfaceId=eni)


def test_a_launch_tags_the_interfaces_it_makes(server, network):
    ec2 = server.client('alice')
    specs = [{'ResourceType': 'instance', 'Tags': [{'Key': 'Name', 'Value': 'web'}]},
             {'ResourceType': 'network-interface', 'Tags': [{'Key': 'Name', 'Value': 'web-nic'}]}]
    (instance,) = ec2.run_instances(ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                                    SubnetId=network['subnets'][0], TagSpecifications=specs)['Instances']
    eni = instance['NetworkInterfaces'][0]['NetworkInterfaceId']
    (described,) = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])['NetworkInterfaces']
    assert described['TagSet'] == [{'Key': 'Name', 'Value': 'web-nic'}]
    assert instance['Tags'] == [{'Key': 'Name', 'Value': 'web'}]
    assert error_code(ec2.run_instances, ImageId=server.image_id, MinCount=1, MaxCount=1, InstanceType='t1.micro',
                      TagSpecifications=[{'ResourceType': 'snapshot', 'Tags': [{'Key': 'a', 'Value': 'b'}]}]) == \
        'InvalidParameterValue'
    ec2.terminate_instances(InstanceIds=[instance['InstanceId']])
