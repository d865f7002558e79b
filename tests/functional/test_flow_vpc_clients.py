"""The VPC flow with the AWS CLI, boto 2 and apache-libcloud, as each one's users write it: create a
VPC and a subnet, launch into it, find them with filters, be refused while the VPC still has
something in it, and delete in order. (boto3's flow is in test_vpcs_boto3.py.)"""
import boto.ec2.connection
import boto.exception
import boto.vpc
import pytest
from boto.ec2.regioninfo import RegionInfo
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver

from tests.support.awscli import Cli
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients


def test_the_vpc_flow_with_the_aws_cli(compute_server):
    cli = Cli(compute_server, compute_server.new_user('awscli-vpc'))
    vpc_id = cli.run('create-vpc', '--cidr-block', '10.80.0.0/16', '--tag-specifications',
                     'ResourceType=vpc,Tags=[{Key=Name,Value=cli}]')['Vpc']['VpcId']
    cli.run('modify-vpc-attribute', '--vpc-id', vpc_id, '--enable-dns-hostnames', '{"Value": true}')
    subnet_id = cli.run('create-subnet', '--vpc-id', vpc_id, '--cidr-block', '10.80.1.0/24')['Subnet']['SubnetId']
    instance_id = cli.run('run-instances', '--image-id', compute_server.image_id, '--instance-type', 't1.micro',
                          '--subnet-id', subnet_id)['Instances'][0]['InstanceId']
    found = cli.run('describe-vpcs', '--filters', 'Name=tag:Name,Values=cli', 'Name=is-default,Values=false')
    assert [vpc['VpcId'] for vpc in found['Vpcs']] == [vpc_id]
    subnets = cli.run('describe-subnets', '--filters', f'Name=vpc-id,Values={vpc_id}')['Subnets']
    assert [(s['SubnetId'], s['AvailableIpAddressCount']) for s in subnets] == [(subnet_id, 250)]
    assert set(cli.instances('--filters', f'Name=subnet-id,Values={subnet_id}')) == {instance_id}
    refused = cli.fail('delete-vpc', '--vpc-id', vpc_id)
    assert 'DependencyViolation' in refused
    cli.run('terminate-instances', '--instance-ids', instance_id)
    cli.run('wait', 'instance-terminated', '--instance-ids', instance_id)
    cli.run('delete-subnet', '--subnet-id', subnet_id)
    cli.run('delete-vpc', '--vpc-id', vpc_id)
    assert 'InvalidVpcID.NotFound' in cli.fail('describe-vpcs', '--vpc-ids', vpc_id)


@pytest.fixture(params=['sigv4', 'sigv2'])
def boto2_vpc(request, compute_server):
    credentials = compute_server.users[compute_server.new_user(f'boto2-vpc-{request.param}')]
    connection = boto.vpc.VPCConnection(credentials['access_key_id'], credentials['secret_access_key'],
                                         is_secure=False, port=compute_server.port, path='/',
                                         region=RegionInfo(name=compute_server.region, endpoint=compute_server.host))
    if request.param == 'sigv4':
        connection.auth_region_name = compute_server.region
        connection.auth_service_name = 'ec2'
    else:
        connection._required_auth_capability = lambda: ['ec2']
        connection._auth_handler = boto.auth.get_auth_handler(connection.host, boto.config, connection.provider,
                                                              ['ec2'])
    return connection


def test_the_vpc_flow_with_boto2(boto2_vpc, compute_server):
    vpc = boto2_vpc.create_vpc('10.81.0.0/16')
    vpc.add_tag('Name', 'boto2')
    subnet = boto2_vpc.create_subnet(vpc.id, '10.81.1.0/24')
    assert subnet.vpc_id == vpc.id and subnet.available_ip_address_count == 251
    reservation = boto2_vpc.run_instances(compute_server.image_id, instance_type='t1.micro', subnet_id=subnet.id)
    (instance,) = reservation.instances
    assert (instance.vpc_id, instance.subnet_id) == (vpc.id, subnet.id)
    assert [v.id for v in boto2_vpc.get_all_vpcs(filters={'tag:Name': 'boto2'})] == [vpc.id]
    assert [s.id for s in boto2_vpc.get_all_subnets(filters={'vpc-id': vpc.id})] == [subnet.id]
    with pytest.raises(boto.exception.EC2ResponseError) as refused:
        boto2_vpc.delete_vpc(vpc.id)
    assert refused.value.error_code == 'DependencyViolation'
    boto2_vpc.terminate_instances([instance.id])
    wait_for(lambda: instance.update() == 'terminated')
    assert boto2_vpc.delete_subnet(subnet.id) and boto2_vpc.delete_vpc(vpc.id)
    assert vpc.id not in [v.id for v in boto2_vpc.get_all_vpcs()]


def test_the_vpc_flow_with_libcloud(compute_server):
    credentials = compute_server.users[compute_server.new_user('libcloud-vpc')]
    driver = EC2NodeDriver(credentials['access_key_id'], credentials['secret_access_key'], signature_version='4',
                           secure=False, host=compute_server.host, port=compute_server.port)
    driver.region_name = compute_server.region
    network = driver.ex_create_network('10.82.0.0/16', name='libcloud')
    zone = driver.list_locations()[0].availability_zone.name
    subnet = driver.ex_create_subnet(network.id, '10.82.1.0/24', zone, name='front')
    assert [n.id for n in driver.ex_list_networks(filters={'tag:Name': 'libcloud'})] == [network.id]
    assert [s.id for s in driver.ex_list_subnets(filters={'vpc-id': network.id})] == [subnet.id]
    image = NodeImage(id=compute_server.image_id, name=None, driver=driver)
    size = NodeSize(id='t1.micro', name='t1.micro', ram=128, disk=1, bandwidth=None, price=None, driver=driver)
    node = driver.create_node(name='in-vpc', size=size, image=image, ex_subnet=subnet)
    assert node.extra['subnet_id'] == subnet.id and node.extra['vpc_id'] == network.id
    with pytest.raises(Exception) as refused:
        driver.ex_delete_network(network)
    assert 'DependencyViolation' in str(refused.value)
    driver.destroy_node(node)
    wait_for(lambda: {n.extra['status'] for n in driver.list_nodes(ex_node_ids=[node.id])} == {'terminated'})
    assert driver.ex_delete_subnet(subnet) and driver.ex_delete_network(network)
