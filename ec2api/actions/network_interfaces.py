"""Network interfaces: create, describe, attach, detach, modify and delete them, and their
secondary private addresses."""
from ..errors import EC2Error
from ..filters import filtered_page
from ..paging import encode_token, page_bounds
from . import action, refuse_unsupported
from .tags import requested_tags, tag_list

_FIELDS = {
    'network-interface-id': lambda n: n['NetworkInterfaceId'],
    'subnet-id': lambda n: n['SubnetId'],
    'vpc-id': lambda n: n['VpcId'],
    'availability-zone': lambda n: n['AvailabilityZone'],
    'description': lambda n: n['Description'],
    'mac-address': lambda n: n['MacAddress'],
    'owner-id': lambda n: n['OwnerId'],
    'status': lambda n: n['Status'],
    'source-dest-check': lambda n: n['SourceDestCheck'],
    'requester-managed': lambda n: n['RequesterManaged'],
    'interface-type': lambda n: n['InterfaceType'],
    'private-ip-address': lambda n: [a['PrivateIpAddress'] for a in n['PrivateIpAddresses']],
    'addresses.private-ip-address': lambda n: [a['PrivateIpAddress'] for a in n['PrivateIpAddresses']],
    'addresses.primary': lambda n: [a['Primary'] for a in n['PrivateIpAddresses']],
    'group-id': lambda n: [g['GroupId'] for g in n['Groups']],
    'group-name': lambda n: [g['GroupName'] for g in n['Groups']],
    'attachment.instance-id': lambda n: (n.get('Attachment') or {}).get('InstanceId'),
    'attachment.instance-owner-id': lambda n: (n.get('Attachment') or {}).get('InstanceOwnerId'),
    'attachment.attachment-id': lambda n: (n.get('Attachment') or {}).get('AttachmentId'),
    'attachment.device-index': lambda n: (n.get('Attachment') or {}).get('DeviceIndex'),
    'attachment.status': lambda n: (n.get('Attachment') or {}).get('Status'),
    'attachment.delete-on-termination': lambda n: (n.get('Attachment') or {}).get('DeleteOnTermination'),
}


@action('CreateNetworkInterface')
def create_network_interface(ctx, args):
    refuse_unsupported(args, ('SubnetId', 'Description', 'PrivateIpAddress', 'TagSpecifications',
                              'SecondaryPrivateIpAddressCount', 'PrivateIpAddresses', 'ClientToken', 'Groups'),
                       'CreateNetworkInterface')
    if not args.get('SubnetId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter SubnetId')
    primary, secondary = _requested_addresses(args)
    tags = requested_tags(args.get('TagSpecifications'), 'network-interface')
    interfaces = ctx.cloud.interfaces
    interface, made = interfaces.create(ctx.account_id, args['SubnetId'], primary, args.get('Description') or '',
                                        args.get('ClientToken'), tuple(args.get('Groups') or ()))
    if not made:
        tags = ctx.cloud.tags.tags_of([interface.interface_id]).get(interface.interface_id) or {}
        return {'NetworkInterface': interface_shape(ctx, interface, tags), 'ClientToken': args.get('ClientToken')}
    try:
        if secondary or args.get('SecondaryPrivateIpAddressCount'):
            interfaces.assign_addresses(ctx.account_id, interface.interface_id, secondary,
                                        args.get('SecondaryPrivateIpAddressCount'))
        if tags:
            ctx.cloud.tags.create(ctx.account_id, [interface.interface_id], tags)
    except Exception:
        interfaces.delete(ctx.account_id, interface.interface_id)     # all or nothing
        raise
    (interface,) = interfaces.describe(ctx.account_id, [interface.interface_id])
    return {'NetworkInterface': interface_shape(ctx, interface, dict(tags)), 'ClientToken': args.get('ClientToken')}


def _requested_addresses(args):
    """(primary address or None, [secondary addresses]) from PrivateIpAddress / PrivateIpAddresses."""
    primary, secondary = args.get('PrivateIpAddress'), []
    for entry in args.get('PrivateIpAddresses') or ():
        address = entry.get('PrivateIpAddress')
        if not address:
            raise EC2Error('MissingParameter', 'Each PrivateIpAddresses entry needs a PrivateIpAddress')
        if entry.get('Primary'):
            if primary and primary != address:
                raise EC2Error('InvalidParameterValue', 'Only one primary private IP address may be given')
            primary = address
        else:
            secondary.append(address)
    if secondary and args.get('SecondaryPrivateIpAddressCount'):
        raise EC2Error('InvalidParameterCombination',
                       'PrivateIpAddresses and SecondaryPrivateIpAddressCount cannot be given together')
    return primary, secondary


@action('DeleteNetworkInterface')
def delete_network_interface(ctx, args):
    ctx.cloud.interfaces.delete(ctx.account_id, args['NetworkInterfaceId'])
    ctx.cloud.tags.forget([args['NetworkInterfaceId']])
    return {}


@action('DescribeNetworkInterfaces')
def describe_network_interfaces(ctx, args):
    ids = args.get('NetworkInterfaceIds')
    if args.get('Filters'):
        interfaces = ctx.cloud.interfaces.describe(ctx.account_id, ids)
        page, token = filtered_page(args, _shapes(ctx, interfaces), _FIELDS, 'NetworkInterfaceId',
                                    'NetworkInterfaceIds')
        return {'NetworkInterfaces': page, 'NextToken': token}
    # Unfiltered: the page is cut by the database, so a long listing costs the same per item.
    limit, after = page_bounds(args, 'NetworkInterfaceIds')
    interfaces = ctx.cloud.interfaces.describe(ctx.account_id, ids, after=after,
                                               limit=None if limit is None else limit + 1)
    more = limit is not None and len(interfaces) > limit
    interfaces = interfaces[:limit] if more else interfaces
    return {'NetworkInterfaces': _shapes(ctx, interfaces),
            'NextToken': encode_token(interfaces[-1].interface_id) if more else None}


def _shapes(ctx, interfaces):
    tags = ctx.cloud.tags.tags_of([interface.interface_id for interface in interfaces])
    return [interface_shape(ctx, interface, tags.get(interface.interface_id)) for interface in interfaces]


@action('AttachNetworkInterface')
def attach_network_interface(ctx, args):
    refuse_unsupported({k: v for k, v in args.items() if not (k == 'NetworkCardIndex' and v == 0)},
                       ('NetworkInterfaceId', 'InstanceId', 'DeviceIndex'), 'AttachNetworkInterface')
    attachment_id = ctx.cloud.interfaces.attach(ctx.account_id, args['NetworkInterfaceId'], args['InstanceId'],
                                                args['DeviceIndex'])
    return {'AttachmentId': attachment_id, 'NetworkCardIndex': 0}


@action('DetachNetworkInterface')
def detach_network_interface(ctx, args):
    ctx.cloud.interfaces.detach(ctx.account_id, args['AttachmentId'])
    return {}


@action('ModifyNetworkInterfaceAttribute')
def modify_network_interface_attribute(ctx, args):
    refuse_unsupported(args, ('NetworkInterfaceId', 'Description', 'SourceDestCheck', 'Groups'),
                       'ModifyNetworkInterfaceAttribute')
    if 'Groups' in args:
        if len(args) > 2 + ('DryRun' in args):
            raise EC2Error('InvalidParameterCombination', 'Exactly one attribute can be modified at a time.')
        ctx.cloud.security_groups.set_interface_groups(ctx.account_id, args['NetworkInterfaceId'], args['Groups'])
        return {}
    given = [name for name in ('Description', 'SourceDestCheck') if name in args]
    if len(given) != 1:
        raise EC2Error('InvalidParameterCombination', 'Exactly one attribute can be modified at a time.')
    value = (args[given[0]] or {}).get('Value')
    if value is None:
        raise EC2Error('MissingParameter', f'The request must contain the parameter {given[0]}.Value')
    ctx.cloud.interfaces.modify(ctx.account_id, args['NetworkInterfaceId'],
                                **({'description': value} if given[0] == 'Description' else {'source_dest_check': value}))
    return {}


@action('DescribeNetworkInterfaceAttribute')
def describe_network_interface_attribute(ctx, args):
    (interface,) = ctx.cloud.interfaces.describe(ctx.account_id, [args['NetworkInterfaceId']])
    shape = interface_shape(ctx, interface, None)
    attribute = args.get('Attribute')
    answers = {'description': {'Description': {'Value': interface.description}},
               'sourceDestCheck': {'SourceDestCheck': {'Value': interface.source_dest_check}},
               'groupSet': {'Groups': shape['Groups']},
               'attachment': {'Attachment': shape.get('Attachment')}}
    if attribute not in answers:
        raise EC2Error('InvalidParameterValue', f"Value ({attribute}) for parameter attribute is invalid.")
    return {'NetworkInterfaceId': interface.interface_id, **answers[attribute]}


@action('AssignPrivateIpAddresses')
def assign_private_ip_addresses(ctx, args):
    refuse_unsupported(args, ('NetworkInterfaceId', 'PrivateIpAddresses', 'SecondaryPrivateIpAddressCount'),
                       'AssignPrivateIpAddresses')
    assigned = ctx.cloud.interfaces.assign_addresses(ctx.account_id, args['NetworkInterfaceId'],
                                                     args.get('PrivateIpAddresses') or (),
                                                     args.get('SecondaryPrivateIpAddressCount'))
    return {'NetworkInterfaceId': args['NetworkInterfaceId'],
            'AssignedPrivateIpAddresses': [{'PrivateIpAddress': address} for address in assigned]}


@action('UnassignPrivateIpAddresses')
def unassign_private_ip_addresses(ctx, args):
    refuse_unsupported(args, ('NetworkInterfaceId', 'PrivateIpAddresses'), 'UnassignPrivateIpAddresses')
    if not args.get('PrivateIpAddresses'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter PrivateIpAddress')
    ctx.cloud.interfaces.unassign_addresses(ctx.account_id, args['NetworkInterfaceId'], args['PrivateIpAddresses'])
    return {}


def interface_shape(ctx, interface, tags):
    region = ctx.cloud.config.region
    shape = {
        'NetworkInterfaceId': interface.interface_id,
        'SubnetId': interface.subnet_id,
        'VpcId': interface.vpc_id,
        'AvailabilityZone': interface.zone or ctx.cloud.config.zones[0],
        'Description': interface.description,
        'OwnerId': interface.owner,
        'RequesterManaged': False,
        'Status': interface.status,
        'MacAddress': interface.mac,
        'PrivateIpAddress': interface.private_ip,
        'PrivateDnsName': _private_dns(interface.private_ip, region),
        'SourceDestCheck': interface.source_dest_check,
        'InterfaceType': 'interface',
        'Groups': [{'GroupId': group_id, 'GroupName': name} for group_id, name in interface.groups],
        'PrivateIpAddresses': [{'PrivateIpAddress': ip, 'Primary': primary, 'PrivateDnsName': _private_dns(ip, region),
                                'Association': association_shape(interface, ip)}
                               for ip, primary in interface.addresses],
        'Association': association_shape(interface, interface.private_ip),
        'TagSet': tag_list(tags),
    }
    if interface.instance_id:
        shape['Attachment'] = {'AttachmentId': interface.attachment_id, 'InstanceId': interface.instance_id,
                               'InstanceOwnerId': interface.owner, 'DeviceIndex': interface.device_index,
                               'Status': interface.attachment_status, 'AttachTime': interface.attached_at,
                               'DeleteOnTermination': interface.delete_on_termination, 'NetworkCardIndex': 0}
    return shape


def association_shape(interface, private_ip):
    """The elastic IP on one private address of the interface, or None."""
    for address, public_ip, association_id in interface.public_ips:
        if address == private_ip:
            return {'PublicIp': public_ip, 'PublicDnsName': public_ip, 'IpOwnerId': interface.owner,
                    'AssociationId': association_id}
    return None


def _private_dns(ip, region):
    return f"ip-{ip.replace('.', '-')}.{region}.compute.internal" if ip else ''
