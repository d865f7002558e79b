"""Subnets: CreateSubnet, DeleteSubnet, DescribeSubnets, ModifySubnetAttribute."""
from ..errors import EC2Error
from ..filters import filtered_page
from . import action, refuse_unsupported
from .tags import requested_tags, tag_list

_FIELDS = {
    'subnet-id': lambda s: s['SubnetId'],
    'subnet-arn': lambda s: s['SubnetArn'],
    'vpc-id': lambda s: s['VpcId'],
    'availability-zone': lambda s: s['AvailabilityZone'],
    'availabilityZone': lambda s: s['AvailabilityZone'],
    'cidr-block': lambda s: s['CidrBlock'],
    'cidr': lambda s: s['CidrBlock'],
    'cidrBlock': lambda s: s['CidrBlock'],
    'default-for-az': lambda s: s['DefaultForAz'],
    'defaultForAz': lambda s: s['DefaultForAz'],
    'map-public-ip-on-launch': lambda s: s['MapPublicIpOnLaunch'],
    'available-ip-address-count': lambda s: s['AvailableIpAddressCount'],
    'owner-id': lambda s: s['OwnerId'],
    'state': lambda s: s['State'],
}


@action('CreateSubnet')
def create_subnet(ctx, args):
    refuse_unsupported(args, ('VpcId', 'CidrBlock', 'AvailabilityZone', 'TagSpecifications'), 'CreateSubnet')
    for required in ('VpcId', 'CidrBlock'):
        if not args.get(required):
            raise EC2Error('MissingParameter', f'The request must contain the parameter {required}')
    tags = requested_tags(args.get('TagSpecifications'), 'subnet')
    subnet = ctx.cloud.subnets.create(ctx.account_id, args['VpcId'], args['CidrBlock'], args.get('AvailabilityZone'))
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [subnet.subnet_id], tags)
    return {'Subnet': _subnet_shape(ctx, subnet, dict(tags))}


@action('DeleteSubnet')
def delete_subnet(ctx, args):
    ctx.cloud.subnets.delete(ctx.account_id, args['SubnetId'])
    return {}


@action('DescribeSubnets')
def describe_subnets(ctx, args):
    subnets = ctx.cloud.subnets.describe(ctx.account_id, args.get('SubnetIds'))
    tags = ctx.cloud.tags.tags_of([subnet.subnet_id for subnet in subnets])
    page, token = filtered_page(args, [_subnet_shape(ctx, subnet, tags.get(subnet.subnet_id)) for subnet in subnets],
                                _FIELDS, 'SubnetId', 'SubnetIds')
    return {'Subnets': page, 'NextToken': token}


@action('ModifySubnetAttribute')
def modify_subnet_attribute(ctx, args):
    refuse_unsupported(args, ('SubnetId', 'MapPublicIpOnLaunch'), 'ModifySubnetAttribute')
    value = (args.get('MapPublicIpOnLaunch') or {}).get('Value')
    if value is None:
        raise EC2Error('MissingParameter', 'The request must contain the parameter MapPublicIpOnLaunch.Value')
    ctx.cloud.subnets.modify_attribute(ctx.account_id, args['SubnetId'], value)
    return {}


def _subnet_shape(ctx, subnet, tags):
    region = ctx.cloud.config.region
    return {
        'SubnetId': subnet.subnet_id,
        'SubnetArn': f'arn:aws:ec2:{region}:{subnet.owner}:subnet/{subnet.subnet_id}',
        'VpcId': subnet.vpc_id,
        'OwnerId': subnet.owner,
        'State': 'available',
        'CidrBlock': subnet.cidr,
        # A network of the cloud's serves every zone; it is shown in the first.
        'AvailabilityZone': subnet.zone or ctx.cloud.config.zones[0],
        'AvailableIpAddressCount': subnet.available,
        'DefaultForAz': subnet.is_default,
        'MapPublicIpOnLaunch': subnet.map_public_ip,
        'AssignIpv6AddressOnCreation': False,
        'Ipv6CidrBlockAssociationSet': [],
        'Tags': tag_list(tags),
    }
