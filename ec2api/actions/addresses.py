"""Elastic IPs, in both styles clients use: by AllocationId/AssociationId (VPC) or by PublicIp (classic)."""
from backend.instances import INSTANCE_ID
from backend.models import is_resource_id

from ..errors import EC2Error
from ..filters import filter_items, shape_tags
from . import action
from .tags import requested_tags, tag_list

# Every address has an allocation id and serves both styles; like AWS since EC2-Classic retired,
# each is reported in the vpc domain whatever domain was asked for.
DOMAIN = 'vpc'
_DOMAINS = ('vpc', 'standard')

_FIELDS = {
    'public-ip': lambda a: a['PublicIp'],
    'allocation-id': lambda a: a['AllocationId'],
    'association-id': lambda a: a.get('AssociationId'),
    'instance-id': lambda a: a.get('InstanceId'),
    'domain': lambda a: a['Domain'],
    'private-ip-address': lambda a: a.get('PrivateIpAddress'),
    'network-interface-id': lambda a: a.get('NetworkInterfaceId'),
    'network-interface-owner-id': lambda a: a.get('NetworkInterfaceOwnerId'),
    'network-border-group': lambda a: a['NetworkBorderGroup'],
    'public-ipv4-pool': lambda a: a['PublicIpv4Pool'],
}


@action('AllocateAddress')
def allocate_address(ctx, args):
    if args.get('Domain', DOMAIN) not in _DOMAINS:
        raise EC2Error('InvalidParameterValue', f"Value ({args['Domain']}) for parameter domain is invalid.")
    if args.get('Address') or args.get('PublicIpv4Pool') or args.get('CustomerOwnedIpv4Pool'):
        raise EC2Error('InvalidParameterValue', 'Addresses come from the cloud pool only; '
                                                'a specific address or pool cannot be asked for.')
    tags = requested_tags(args.get('TagSpecifications'), 'elastic-ip')
    address = ctx.cloud.addresses.allocate(ctx.account_id)
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [address.allocation_id], tags)
    return {'PublicIp': address.public_ip, 'AllocationId': address.allocation_id, 'Domain': DOMAIN,
            'PublicIpv4Pool': 'amazon', 'NetworkBorderGroup': ctx.cloud.config.region}


@action('AssociateAddress')
def associate_address(ctx, args):
    instance_id, interface_id = args.get('InstanceId'), args.get('NetworkInterfaceId')
    if not instance_id and not interface_id:
        raise EC2Error('MissingParameter', 'The request must contain the parameter InstanceId or NetworkInterfaceId')
    if instance_id and not INSTANCE_ID.fullmatch(instance_id):
        raise EC2Error('InvalidInstanceID.Malformed', f'Invalid id: "{instance_id}"')
    if interface_id and not is_resource_id(interface_id, 'eni'):
        raise EC2Error('InvalidNetworkInterfaceID.Malformed', f'Invalid id: "{interface_id}"')
    allocation_id = args.get('AllocationId')
    # VPC style refuses to move an address that is in use unless told to; classic style moves it.
    allow_reassociation = args.get('AllowReassociation', not allocation_id)
    association_id = ctx.cloud.addresses.associate(
        ctx.account_id, instance_id, allocation_id=allocation_id, public_ip=args.get('PublicIp'),
        allow_reassociation=allow_reassociation, interface_id=interface_id,
        private_ip=args.get('PrivateIpAddress'))
    return {'AssociationId': association_id}


@action('DisassociateAddress')
def disassociate_address(ctx, args):
    association_id, public_ip = args.get('AssociationId'), args.get('PublicIp')
    if not association_id and not public_ip:
        raise EC2Error('MissingParameter', 'The request must contain the parameter AssociationId or PublicIp')
    ctx.cloud.addresses.disassociate(ctx.account_id, association_id=association_id, public_ip=public_ip)
    return {}


@action('ReleaseAddress')
def release_address(ctx, args):
    ctx.cloud.addresses.release(ctx.account_id, allocation_id=args.get('AllocationId'),
                                public_ip=args.get('PublicIp'))
    return {}


@action('DescribeAddresses')
def describe_addresses(ctx, args):
    addresses = ctx.cloud.addresses.describe(ctx.account_id, public_ips=args.get('PublicIps'),
                                             allocation_ids=args.get('AllocationIds'))
    tags = ctx.cloud.tags.tags_of([address.allocation_id for address in addresses])
    shapes = [_address_shape(address, tags.get(address.allocation_id), ctx.cloud.config.region)
              for address in addresses]
    return {'Addresses': filter_items(shapes, args.get('Filters'), _FIELDS, shape_tags)}


def _address_shape(address, tags, region):
    return {
        'PublicIp': address.public_ip,
        'AllocationId': address.allocation_id,
        'Domain': DOMAIN,
        'InstanceId': address.instance_id,
        'AssociationId': address.association_id,
        'NetworkInterfaceId': address.interface_id,
        'PrivateIpAddress': address.private_ip,
        'NetworkInterfaceOwnerId': address.owner if address.interface_id else None,
        'PublicIpv4Pool': 'amazon',
        'NetworkBorderGroup': region,
        'Tags': tag_list(tags),
    }
