"""The volume flow with the AWS CLI (and its waiters), boto 2 (SigV4 and SigV2) and apache-libcloud, as
their users write it: create a volume, wait for it, attach it to an instance, find it with filters,
detach it, delete it. (boto3 is in test_volumes_boto3.py.)"""
import boto.exception
import pytest
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver

from tests.support.awscli import Cli
from tests.support.boto2 import connect
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients


def test_the_volume_flow_with_the_aws_cli(compute_server):
    cli = Cli(compute_server, compute_server.new_user('awscli-volumes'))
    zone = cli.run('describe-availability-zones')['AvailabilityZones'][0]['ZoneName']
    instance = cli.run('run-instances', '--image-id', compute_server.image_id, '--instance-type', 't1.micro',
                       '--placement', f'AvailabilityZone={zone}')['Instances'][0]['InstanceId']
    cli.run('wait', 'instance-running', '--instance-ids', instance)
    volume_id = cli.run('create-volume', '--availability-zone', zone, '--size', '2', '--volume-type', 'gp3',
                        '--tag-specifications', 'ResourceType=volume,Tags=[{Key=Name,Value=data}]')['VolumeId']
    cli.run('wait', 'volume-available', '--volume-ids', volume_id)
    attached = cli.run('attach-volume', '--volume-id', volume_id, '--instance-id', instance, '--device', '/dev/sdf')
    assert attached['State'] == 'attaching'
    cli.run('wait', 'volume-in-use', '--volume-ids', volume_id)
    found = cli.run('describe-volumes', '--filters', 'Name=tag:Name,Values=data',
                    f'Name=attachment.instance-id,Values={instance}')['Volumes']
    assert [v['VolumeId'] for v in found] == [volume_id] and found[0]['Attachments'][0]['Device'] == '/dev/sdf'
    assert 'VolumeInUse' in cli.fail('delete-volume', '--volume-id', volume_id)
    cli.run('detach-volume', '--volume-id', volume_id)
    cli.run('wait', 'volume-available', '--volume-ids', volume_id)
    cli.run('delete-volume', '--volume-id', volume_id)
    cli.run('wait', 'volume-deleted', '--volume-ids', volume_id)
    cli.run('terminate-instances', '--instance-ids', instance)


@pytest.mark.parametrize('signature', ['sigv4', 'sigv2'])
def test_the_volume_flow_with_boto2(compute_server, signature):
    ec2 = connect(compute_server, compute_server.users[compute_server.new_user(f'boto2-volumes-{signature}')],
                  signature)
    zone = ec2.get_all_zones()[0].name
    reservation = ec2.run_instances(compute_server.image_id, instance_type='t1.micro', placement=zone)
    (instance,) = reservation.instances
    wait_for(lambda: instance.update() == 'running')
    volume = ec2.create_volume(1, zone, volume_type='gp2')
    wait_for(lambda: volume.update() == 'available')
    assert (volume.size, volume.zone, volume.type) == (1, zone, 'gp2')
    assert ec2.attach_volume(volume.id, instance.id, '/dev/sdf')
    wait_for(lambda: volume.update() == 'in-use' and volume.attachment_state() == 'attached')
    assert volume.attach_data.instance_id == instance.id and volume.attach_data.device == '/dev/sdf'
    (listed,) = ec2.get_all_volumes(filters={'attachment.device': '/dev/sdf'})
    assert listed.id == volume.id
    with pytest.raises(boto.exception.EC2ResponseError) as refused:
        ec2.delete_volume(volume.id)
    assert refused.value.error_code == 'VolumeInUse'
    assert ec2.detach_volume(volume.id)
    wait_for(lambda: volume.update() == 'available')
    assert ec2.delete_volume(volume.id)
    assert ec2.get_all_volumes() == []
    ec2.terminate_instances([instance.id])


def test_the_volume_flow_with_libcloud(compute_server):
    credentials = compute_server.users[compute_server.new_user('libcloud-volumes')]
    driver = EC2NodeDriver(credentials['access_key_id'], credentials['secret_access_key'], signature_version='4',
                           secure=False, host=compute_server.host, port=compute_server.port)
    driver.region_name = compute_server.region
    location = driver.list_locations()[0]
    image = NodeImage(id=compute_server.image_id, name=None, driver=driver)
    size = NodeSize(id='t1.micro', name='t1.micro', ram=128, disk=1, bandwidth=None, price=None, driver=driver)
    node = driver.create_node(name='db', size=size, image=image, location=location)
    wait_for(lambda: driver.list_nodes(ex_node_ids=[node.id])[0].state == 'running')
    volume = driver.create_volume(1, 'db-data', location=location)
    wait_for(lambda: driver.list_volumes()[0].extra['state'] == 'available')
    assert driver.attach_volume(node, volume, '/dev/sdf')
    wait_for(lambda: [v.extra['state'] for v in driver.list_volumes(node)] == ['in-use'])
    (listed,) = driver.list_volumes(node)
    assert (listed.id, listed.name, listed.size) == (volume.id, 'db-data', 1)
    assert driver.detach_volume(volume)
    wait_for(lambda: driver.list_volumes()[0].extra['state'] == 'available')
    assert driver.destroy_volume(volume)
    assert driver.list_volumes() == []
    driver.destroy_node(node)
