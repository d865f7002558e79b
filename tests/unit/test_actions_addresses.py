"""Elastic IP actions through real boto3 clients, in VPC style (ids) and classic style (PublicIp)."""
from tests.support.client_errors import error_code


def launch(world, ec2):
    instance_id = ec2.run_instances(ImageId=world.image_id, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']
    world.settle()
    return instance_id


def public_ip_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0].get('PublicIpAddress')


def test_vpc_style_allocate_associate_disassociate_release(world, ec2):
    instance_id = launch(world, ec2)
    address = ec2.allocate_address(Domain='vpc')
    assert address['Domain'] == 'vpc' and address['AllocationId'].startswith('eipalloc-')
    association_id = ec2.associate_address(AllocationId=address['AllocationId'], InstanceId=instance_id)['AssociationId']
    assert public_ip_of(ec2, instance_id) == address['PublicIp']
    instance = ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]
    assert instance['PublicDnsName'] == address['PublicIp']
    assert instance['NetworkInterfaces'][0]['Association']['PublicIp'] == address['PublicIp']
    (described,) = ec2.describe_addresses(AllocationIds=[address['AllocationId']])['Addresses']
    assert (described['InstanceId'], described['AssociationId']) == (instance_id, association_id)
    assert described['PrivateIpAddress'] == instance['PrivateIpAddress']
    assert error_code(ec2.release_address, AllocationId=address['AllocationId']) == 'InvalidIPAddress.InUse'
    ec2.disassociate_address(AssociationId=association_id)
    assert public_ip_of(ec2, instance_id) is None
    ec2.release_address(AllocationId=address['AllocationId'])
    assert ec2.describe_addresses()['Addresses'] == []


def test_classic_style_by_public_ip(world, ec2):
    instance_id = launch(world, ec2)
    public_ip = ec2.allocate_address(Domain='standard')['PublicIp']
    ec2.associate_address(PublicIp=public_ip, InstanceId=instance_id)
    assert public_ip_of(ec2, instance_id) == public_ip
    assert [a['PublicIp'] for a in ec2.describe_addresses(PublicIps=[public_ip])['Addresses']] == [public_ip]
    ec2.disassociate_address(PublicIp=public_ip)
    assert public_ip_of(ec2, instance_id) is None
    ec2.associate_address(PublicIp=public_ip, InstanceId=instance_id)
    ec2.release_address(PublicIp=public_ip)   # classic style releases an address in use
    assert public_ip_of(ec2, instance_id) is None


def test_vpc_style_moves_an_address_in_use_only_when_allowed(world, ec2):
    first, second = launch(world, ec2), launch(world, ec2)
    allocation_id = ec2.allocate_address()['AllocationId']
    ec2.associate_address(AllocationId=allocation_id, InstanceId=first)
    assert error_code(ec2.associate_address, AllocationId=allocation_id,
                      InstanceId=second) == 'Resource.AlreadyAssociated'
    ec2.associate_address(AllocationId=allocation_id, InstanceId=second, AllowReassociation=True)
    assert public_ip_of(ec2, first) is None and public_ip_of(ec2, second) is not None


def test_filters(world, ec2):
    instance_id = launch(world, ec2)
    used, spare = ec2.allocate_address(), ec2.allocate_address()
    ec2.associate_address(AllocationId=used['AllocationId'], InstanceId=instance_id)
    ec2.create_tags(Resources=[spare['AllocationId']], Tags=[{'Key': 'purpose', 'Value': 'spare'}])

    def matching(name, values):
        return [a['PublicIp'] for a in ec2.describe_addresses(Filters=[{'Name': name, 'Values': values}])['Addresses']]

    assert matching('instance-id', [instance_id]) == [used['PublicIp']]
    assert matching('allocation-id', [spare['AllocationId']]) == [spare['PublicIp']]
    assert matching('public-ip', ['192.0.2.*']) == sorted([used['PublicIp'], spare['PublicIp']])
    assert matching('domain', ['vpc']) == sorted([used['PublicIp'], spare['PublicIp']])
    assert matching('association-id', ['eipassoc-*']) == [used['PublicIp']]
    assert matching('tag:purpose', ['spare']) == [spare['PublicIp']]
    assert error_code(ec2.describe_addresses, Filters=[{'Name': 'colour', 'Values': ['x']}]) == 'InvalidParameterValue'


def test_another_account_cannot_see_or_use_them(world, ec2):
    instance_id = launch(world, ec2)
    address = ec2.allocate_address()
    bob = world.client('bob')
    assert bob.describe_addresses()['Addresses'] == []
    assert error_code(bob.describe_addresses, PublicIps=[address['PublicIp']]) == 'InvalidAddress.NotFound'
    assert error_code(bob.release_address, AllocationId=address['AllocationId']) == 'InvalidAllocationID.NotFound'
    assert error_code(bob.release_address, PublicIp=address['PublicIp']) == 'InvalidAddress.NotFound'
    bob_instance = launch(world, bob)
    assert error_code(bob.associate_address, AllocationId=address['AllocationId'],
                      InstanceId=bob_instance) == 'InvalidAllocationID.NotFound'
    bobs_address = bob.allocate_address()
    assert error_code(bob.associate_address, AllocationId=bobs_address['AllocationId'],
                      InstanceId=instance_id) == 'InvalidInstanceID.NotFound'


def test_bad_requests(world, ec2):
    address = ec2.allocate_address()
    assert error_code(ec2.associate_address, AllocationId=address['AllocationId']) == 'MissingParameter'
    assert error_code(ec2.associate_address, AllocationId=address['AllocationId'],
                      InstanceId='i-zz') == 'InvalidInstanceID.Malformed'
    assert error_code(ec2.disassociate_address) == 'MissingParameter'
    assert error_code(ec2.release_address) == 'MissingParameter'
    assert error_code(ec2.allocate_address, Domain='elsewhere') == 'InvalidParameterValue'
