"""The security-group flow with the AWS CLI, boto 2 (SigV4 and SigV2) and apache-libcloud, as their
users write it: create a group, authorize by CIDR and by group, find it with filters, launch into it,
revoke, and delete it after a refusal while it is still in use. (boto3 is in
test_security_groups_boto3.py, with boto 2's legacy flat parameters.)"""
import boto.exception
import pytest
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver

from tests.support.awscli import Cli
from tests.support.boto2 import connect
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients


def test_the_group_flow_with_the_aws_cli(compute_server):
    cli = Cli(compute_server, compute_server.new_user('awscli-sg'))
    group_id = cli.run('create-security-group', '--group-name', 'web', '--description', 'web servers')['GroupId']
    default_id = cli.run('describe-security-groups', '--group-names', 'default')['SecurityGroups'][0]['GroupId']
    cli.run('authorize-security-group-ingress', '--group-id', group_id, '--protocol', 'tcp', '--port', '22',
            '--cidr', '10.0.0.0/8')
    cli.run('authorize-security-group-ingress', '--group-id', group_id, '--protocol', 'tcp', '--port', '80-81',
            '--source-group', default_id)
    assert 'InvalidPermission.Duplicate' in cli.fail('authorize-security-group-ingress', '--group-id', group_id,
                                                     '--protocol', 'tcp', '--port', '22', '--cidr', '10.0.0.0/8')
    found = cli.run('describe-security-groups', '--filters', 'Name=ip-permission.to-port,Values=81',
                    'Name=group-name,Values=web')['SecurityGroups']
    assert [g['GroupId'] for g in found] == [group_id]
    (ports,) = [p for p in found[0]['IpPermissions'] if p['FromPort'] == 80]
    assert (ports['ToPort'], ports['UserIdGroupPairs'][0]['GroupId']) == (81, default_id)
    instance_id = cli.run('run-instances', '--image-id', compute_server.image_id, '--instance-type', 't1.micro',
                          '--security-group-ids', group_id)['Instances'][0]['InstanceId']
    assert [g['GroupId'] for g in cli.instances('--instance-ids', instance_id)[instance_id]['SecurityGroups']] == \
        [group_id]
    cli.run('revoke-security-group-ingress', '--group-id', group_id, '--protocol', 'tcp', '--port', '22',
            '--cidr', '10.0.0.0/8')
    assert 'DependencyViolation' in cli.fail('delete-security-group', '--group-id', group_id)
    cli.run('terminate-instances', '--instance-ids', instance_id)
    cli.run('wait', 'instance-terminated', '--instance-ids', instance_id)
    cli.run('delete-security-group', '--group-id', group_id)
    assert 'InvalidGroup.NotFound' in cli.fail('describe-security-groups', '--group-ids', group_id)


def test_the_group_flow_with_libcloud(compute_server):
    credentials = compute_server.users[compute_server.new_user('libcloud-sg')]
    driver = EC2NodeDriver(credentials['access_key_id'], credentials['secret_access_key'], signature_version='4',
                           secure=False, host=compute_server.host, port=compute_server.port)
    driver.region_name = compute_server.region
    created = driver.ex_create_security_group('app', 'app servers')
    group_id = created['group_id']
    (default,) = driver.ex_get_security_groups(group_names=['default'])
    driver.ex_authorize_security_group_ingress(group_id, 22, 22, cidr_ips=['192.168.0.0/16'])
    driver.ex_authorize_security_group_ingress(group_id, 5432, 5432, group_pairs=[{'group_id': default.id}])
    (listed,) = driver.ex_get_security_groups(filters={'ip-permission.from-port': '5432'})
    assert listed.id == group_id
    assert sorted(rule['from_port'] for rule in listed.ingress_rules) == ['22', '5432']
    (pair,) = [rule for rule in listed.ingress_rules if rule['from_port'] == '5432'][0]['group_pairs']
    assert pair['group_id'] == default.id
    subnet = driver.ex_list_subnets(filters={'default-for-az': 'true'})[0]
    image = NodeImage(id=compute_server.image_id, name=None, driver=driver)
    size = NodeSize(id='t1.micro', name='t1.micro', ram=128, disk=1, bandwidth=None, price=None, driver=driver)
    node = driver.create_node(name='app', size=size, image=image, ex_subnet=subnet, ex_security_group_ids=[group_id])
    assert [g['group_id'] for g in node.extra['groups']] == [group_id]
    driver.ex_revoke_security_group_ingress(group_id, 22, 22, cidr_ips=['192.168.0.0/16'])
    with pytest.raises(Exception) as refused:
        driver.ex_delete_security_group_by_id(group_id)
    assert 'DependencyViolation' in str(refused.value)
    driver.destroy_node(node)
    wait_for(lambda: {n.extra['status'] for n in driver.list_nodes(ex_node_ids=[node.id])} == {'terminated'})
    assert driver.ex_delete_security_group_by_id(group_id)


@pytest.mark.parametrize('signature', ['sigv4', 'sigv2'])
def test_the_group_flow_with_boto2(compute_server, signature):
    ec2 = connect(compute_server, compute_server.users[compute_server.new_user(f'boto2-sg-{signature}')], signature)
    web = ec2.create_security_group('web', 'web servers')
    admin = ec2.create_security_group('admin', 'administrators')
    listed = {group.id: group for group in ec2.get_all_security_groups(group_ids=[web.id, admin.id])}
    assert listed[web.id].vpc_id and listed[web.id].vpc_id == listed[admin.id].vpc_id, 'both in the default VPC'
    assert ec2.authorize_security_group(group_id=web.id, ip_protocol='tcp', from_port=80, to_port=80,
                                        cidr_ip='0.0.0.0/0')
    assert ec2.authorize_security_group(group_id=web.id, ip_protocol='tcp', from_port=22, to_port=22,
                                        src_security_group_group_id=admin.id)
    (found,) = ec2.get_all_security_groups(filters={'ip-permission.group-id': admin.id})
    assert found.id == web.id
    assert sorted((rule.ip_protocol, rule.from_port, rule.to_port) for rule in found.rules) == \
        [('tcp', '22', '22'), ('tcp', '80', '80')]
    (ssh,) = [rule for rule in found.rules if rule.from_port == '22']
    assert [grant.group_id for grant in ssh.grants] == [admin.id]
    assert ec2.get_all_security_groups(filters={'ip-permission.cidr': '192.0.2.0/24'}) == []

    reservation = ec2.run_instances(compute_server.image_id, instance_type='t1.micro', security_group_ids=[web.id])
    (instance,) = reservation.instances
    wait_for(lambda: instance.update() == 'running')
    assert [group.id for group in instance.groups] == [web.id]
    assert ec2.revoke_security_group(group_id=web.id, ip_protocol='tcp', from_port=80, to_port=80,
                                     cidr_ip='0.0.0.0/0')
    for group_id in (web.id, admin.id):   # in use; named by a rule
        with pytest.raises(boto.exception.EC2ResponseError) as refused:
            ec2.delete_security_group(group_id=group_id)
        assert refused.value.error_code == 'DependencyViolation'
    ec2.terminate_instances([instance.id])
    wait_for(lambda: instance.update() == 'terminated')
    assert ec2.delete_security_group(group_id=web.id) and ec2.delete_security_group(group_id=admin.id)
    assert [g.name for g in ec2.get_all_security_groups()] == ['default']
