"""Instances: launch, describe, status, lifecycle requests, console output and attributes.

The back-end filters and pages in the database; this module maps EC2 filter names onto its fields,
and its records onto EC2's Reservation and Instance shapes.
"""
import base64
import binascii
import datetime
import re

from backend.models import utcnow
from backend.instances import FILTER_FIELDS, INSTANCE_ID, MATCH_NOTHING, Criterion, LaunchRequest
from backend.lifecycle import State, ec2_state
from backend.matching import wildcard
from backend.storage.launch_volumes import is_root_device

from ..errors import EC2Error
from ..paging import encode_token, page_bounds
from . import action
from .block_devices import requested_block_devices
from .tags import requested_tags_by_type, tag_list

DEFAULT_INSTANCE_TYPE = 'm1.small'

# EC2 filter names that are another spelling of a back-end field. Public DNS names are the public
# addresses themselves (see _public_dns_name), so `dns-name` filters on the address.
_FILTER_ALIASES = {
    'dns-name': 'ip-address',
    'network-interface.addresses.private-ip-address': 'private-ip-address',
    'network-interface.addresses.association.public-ip': 'ip-address',
    'network-interface.association.public-ip': 'ip-address',
    'network-interface.mac-address': 'mac-address',
    'network-interface.subnet-id': 'subnet-id',
    'network-interface.vpc-id': 'vpc-id',
    'placement.availability-zone': 'availability-zone',
}
# Attributes every instance here has the same value of: such a filter keeps all or nothing.
_CONSTANT_FIELDS = {
    'architecture': 'x86_64',
    'hypervisor': 'xen',
    'tenancy': 'default',
    'monitoring-state': 'disabled',
}
_TAG_FILTERS = ('tag-key', 'tag-value')
_PRIVATE_DNS = re.compile(r'ip-([0-9*?-]+)\.(.+)\.compute\.internal')
# DescribeInstanceStatus filters read from the status, which the database does not hold.
_STATUS_FILTERS = {
    'instance-status.status': lambda record: _status(record)[0],
    'system-status.status': lambda record: _status(record)[0],
    'instance-status.reachability': lambda record: _status(record)[1],
    'system-status.reachability': lambda record: _status(record)[1],
}
# The DescribeInstanceStatus filters the database answers.
_STATE_FILTERS = frozenset({'availability-zone', 'instance-state-name', 'instance-state-code', 'instance-id'})


# -- launching ---------------------------------------------------------------------------------------

@action('RunInstances')
def run_instances(ctx, args):
    if not args.get('ImageId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter ImageId')
    placement = args.get('Placement') or {}
    # Configuration tools tag the interfaces and volumes a launch makes too.
    tag_specs = requested_tags_by_type(args.get('TagSpecifications'), ('instance', 'network-interface', 'volume'))
    request = LaunchRequest(
        image_id=args['ImageId'], min_count=args['MinCount'], max_count=args['MaxCount'],
        instance_type=args.get('InstanceType') or DEFAULT_INSTANCE_TYPE, key_name=args.get('KeyName'),
        user_data=_checked_user_data(args.get('UserData')), zone=placement.get('AvailabilityZone'),
        dedicated_host_id=placement.get('HostId'), group_name=placement.get('GroupName'),
        kernel_id=args.get('KernelId'), ramdisk_id=args.get('RamdiskId'), subnet_id=_launch_subnet(args),
        private_ip=_launch_private_ip(args), extra_interfaces=_launch_extra_interfaces(args),
        associate_public_ip=_launch_public_ip(args), security_group_ids=_launch_groups(args)[0],
        security_group_names=_launch_groups(args)[1],
        disable_api_termination=bool(args.get('DisableApiTermination')), disable_api_stop=bool(args.get('DisableApiStop')),
        shutdown_behavior=args.get('InstanceInitiatedShutdownBehavior') or 'stop', tags=tuple(tag_specs.get('instance', ())),
        interface_tags=tuple(tag_specs.get('network-interface', ())),
        block_devices=requested_block_devices(args.get('BlockDeviceMappings')),
        client_token=args.get('ClientToken'))
    records = sorted(ctx.cloud.instances.run(ctx.account_id, request), key=lambda r: r.ami_launch_index)
    ids = [r.instance_id for r in records]
    if tag_specs.get('volume'):
        volume_ids = [a.volume_id for attached in ctx.cloud.volumes.attached_to(ids).values() for a in attached]
        if volume_ids:
            ctx.cloud.tags.create(ctx.account_id, volume_ids, tag_specs['volume'])
    return _reservation(ctx, records, ctx.cloud.interfaces.by_instance(ids))


# What a launch's network interfaces may say here.
_INTERFACE_MEMBERS = {'DeviceIndex', 'SubnetId', 'PrivateIpAddress', 'DeleteOnTermination', 'Groups',
                      'AssociatePublicIpAddress'}
MAX_LAUNCH_INTERFACES = 8


def _launch_interfaces(args):
    """The launch's NetworkInterface.N (as configuration tools give the subnet), by device index."""
    interfaces = args.get('NetworkInterfaces') or []
    if not interfaces:
        return {}
    if args.get('SubnetId') or args.get('PrivateIpAddress'):
        raise EC2Error('InvalidParameterCombination', 'Network interfaces and an instance-level subnet ID or '
                                                      'private IP address may not be specified on the same request')
    if len(interfaces) > MAX_LAUNCH_INTERFACES:
        raise EC2Error('InvalidParameterValue', f'An instance has at most {MAX_LAUNCH_INTERFACES} interfaces here.')
    by_index = {}
    for number, interface in enumerate(interfaces, 1):
        index = interface.get('DeviceIndex')
        if index is None:
            raise EC2Error('MissingParameter', f'The request must contain the parameter NetworkInterface.{number}.DeviceIndex')
        if not 0 <= index < MAX_LAUNCH_INTERFACES or index in by_index:
            raise EC2Error('InvalidParameterValue', f'Invalid or repeated device index {index}.')
        unsupported = sorted(set(interface) - _INTERFACE_MEMBERS)
        if unsupported:
            raise EC2Error('UnsupportedOperation', f"NetworkInterface.{number}.{unsupported[0]} is not supported here.")
        if interface.get('DeleteOnTermination') is False:
            raise EC2Error('UnsupportedOperation', 'Interfaces made at launch are deleted with their instance here.')
        if not interface.get('SubnetId'):
            raise EC2Error('MissingParameter', f'The request must contain the parameter NetworkInterface.{number}.SubnetId')
        by_index[index] = interface
    if 0 not in by_index or sorted(by_index) != list(range(len(by_index))):
        raise EC2Error('InvalidParameterValue', 'Device indexes must start at 0 and leave no gap.')
    if len(by_index) > 1 and any('AssociatePublicIpAddress' in interface for interface in by_index.values()):
        raise EC2Error('InvalidParameterCombination', 'The associatePublicIPAddress parameter cannot be specified '
                                                      'when launching with multiple network interfaces.')
    return by_index


def _launch_subnet(args):
    interfaces = _launch_interfaces(args)
    return interfaces[0]['SubnetId'] if interfaces else args.get('SubnetId')


def _launch_private_ip(args):
    interfaces = _launch_interfaces(args)
    return interfaces[0].get('PrivateIpAddress') if interfaces else args.get('PrivateIpAddress')


def _launch_public_ip(args):
    interfaces = _launch_interfaces(args)
    return interfaces[0].get('AssociatePublicIpAddress') if interfaces else None


def _launch_extra_interfaces(args):
    return tuple((index, interface['SubnetId'], interface.get('PrivateIpAddress'), tuple(interface.get('Groups') or ()))
                 for index, interface in sorted(_launch_interfaces(args).items()) if index > 0)


def _launch_groups(args):
    """eth0's groups: (ids, names) from SecurityGroupId.N / SecurityGroup.N or NetworkInterface.1.Groups."""
    interfaces = _launch_interfaces(args)
    ids = [*(args.get('SecurityGroupIds') or ()), *((interfaces.get(0) or {}).get('Groups') or ())]
    return tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(args.get('SecurityGroups') or ()))


def _checked_user_data(user_data):
    """User data travels base64-encoded; keep it as sent, but refuse what is not base64."""
    if user_data is None:
        return None
    try:
        base64.b64decode(''.join(user_data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise EC2Error('InvalidParameterValue', 'Invalid BASE64 encoding of user data.') from None
    return user_data


# -- describing --------------------------------------------------------------------------------------

@action('DescribeInstances')
def describe_instances(ctx, args):
    limit, after = page_bounds(args, 'InstanceIds')
    criteria = _criteria(args.get('Filters'), ctx.cloud.config.region)
    records, more = _describe(ctx, args.get('InstanceIds'), criteria, after, limit)
    reservations = {}
    for record in records:   # a reservation appears where its first instance on the page does
        reservations.setdefault(record.reservation_id, []).append(record)
    interfaces = ctx.cloud.interfaces.by_instance([record.instance_id for record in records])
    return {'Reservations': [_reservation(ctx, members, interfaces) for members in reservations.values()],
            'NextToken': _next_token(records, more)}


@action('DescribeInstanceStatus')
def describe_instance_status(ctx, args):
    limit, after = page_bounds(args, 'InstanceIds')
    filters = args.get('Filters') or ()
    for spec in filters:
        if not spec.get('Name'):
            raise EC2Error('InvalidParameterValue', 'A filter must have a name.')
        if spec['Name'] not in _STATUS_FILTERS and spec['Name'] not in _STATE_FILTERS:
            raise EC2Error('InvalidParameterValue', f"The filter '{spec['Name']}' is invalid")
    criteria = _criteria([spec for spec in filters if spec['Name'] in _STATE_FILTERS], ctx.cloud.config.region)
    if not args.get('IncludeAllInstances'):
        criteria.append(Criterion('instance-state-name', ('running',)))
    keep = _status_predicate([spec for spec in filters if spec['Name'] in _STATUS_FILTERS])
    records, more = _describe(ctx, args.get('InstanceIds'), criteria, after, limit, keep)
    return {'InstanceStatuses': [_status_shape(record) for record in records],
            'NextToken': _next_token(records, more)}


def _describe(ctx, ids, criteria, after, limit, keep=None):
    """(records, more): one page of the back-end's listing, optionally thinned by `keep`."""
    instances = ctx.cloud.instances
    records, more = instances.describe_page(ctx.account_id, ids, criteria, after, limit)
    if keep is None:
        return records, more
    kept = [record for record in records if keep(record)]
    while more and len(kept) < limit:   # `more` implies a limit: fill the page from the next ones
        records, more = instances.describe_page(ctx.account_id, ids, criteria, records[-1].instance_id,
                                                limit, check_ids=False)
        kept.extend(record for record in records if keep(record))
    if limit is not None and len(kept) > limit:
        return kept[:limit], True
    return kept, more


def _next_token(records, more):
    return encode_token(records[-1].instance_id) if more and records else None


def _criteria(filters, region):
    """The back-end criteria for EC2 filters; a constant attribute filter that fails empties the set."""
    criteria = []
    for spec in filters or ():
        name, values = spec.get('Name'), tuple(spec.get('Values') or ())
        if not name:
            raise EC2Error('InvalidParameterValue', 'A filter must have a name.')
        if not values:
            raise EC2Error('InvalidParameterValue', f"The filter '{name}' needs at least one value.")
        if name in _CONSTANT_FIELDS:
            if not any(wildcard(value)(_CONSTANT_FIELDS[name]) for value in values):
                criteria.append(MATCH_NOTHING)
            continue
        if name == 'root-device-type':     # two values only: wildcards are matched here
            matched = tuple(kind for kind in ('ebs', 'instance-store') if any(wildcard(v)(kind) for v in values))
            criteria.append(Criterion('root-device-type', matched) if matched else MATCH_NOTHING)
            continue
        if name == 'private-dns-name':
            criteria.append(Criterion('private-ip-address', tuple(_ip_of_private_dns(v, region) for v in values)))
            continue
        field = _FILTER_ALIASES.get(name, name)
        if field not in FILTER_FIELDS and not field.startswith('tag:') and field not in _TAG_FILTERS:
            raise EC2Error('InvalidParameterValue', f"The filter '{name}' is invalid")
        criteria.append(Criterion(field, values))
    return criteria


def _ip_of_private_dns(value, region):
    """The private-address pattern a private DNS name (wildcards allowed in the address) stands for."""
    match = _PRIVATE_DNS.fullmatch(value)
    if match is None:
        raise EC2Error('InvalidParameterValue',
                       f"The private-dns-name '{value}' is not of the form ip-A-B-C-D.<region>.compute.internal")
    if not wildcard(match.group(2))(region):
        return ''   # a name in another region: no instance has an empty address
    return match.group(1).replace('-', '.')


def _status_predicate(filters):
    """A test of the status filters, or None when there are none."""
    tests = []
    for spec in filters:
        if not spec.get('Values'):
            raise EC2Error('InvalidParameterValue', f"The filter '{spec['Name']}' needs at least one value.")
        tests.append((_STATUS_FILTERS[spec['Name']], [wildcard(value) for value in spec['Values']]))
    if not tests:
        return None
    return lambda record: all(_any_match(patterns, read(record)) for read, patterns in tests)


def _any_match(patterns, value):
    return value is not None and any(pattern(value) for pattern in patterns)


# -- lifecycle requests ------------------------------------------------------------------------------

@action('TerminateInstances')
def terminate_instances(ctx, args):
    changes = ctx.cloud.instances.terminate(ctx.account_id, args['InstanceIds'])
    return {'TerminatingInstances': [_state_change(change) for change in changes]}


@action('StopInstances')
def stop_instances(ctx, args):
    changes = ctx.cloud.instances.stop(ctx.account_id, args['InstanceIds'], force=args.get('Force', False))
    return {'StoppingInstances': [_state_change(change) for change in changes]}


@action('StartInstances')
def start_instances(ctx, args):
    changes = ctx.cloud.instances.start(ctx.account_id, args['InstanceIds'])
    return {'StartingInstances': [_state_change(change) for change in changes]}


@action('RebootInstances')
def reboot_instances(ctx, args):
    ctx.cloud.instances.reboot(ctx.account_id, args['InstanceIds'])
    return {}


@action('GetConsoleOutput')
def get_console_output(ctx, args):
    instance_id = args['InstanceId']
    console = ctx.cloud.console_output(ctx.account_id, instance_id)
    return {'InstanceId': instance_id, 'Timestamp': datetime.datetime.now(datetime.timezone.utc),
            'Output': base64.b64encode(console).decode('ascii')}


def _state_change(change):
    return {'InstanceId': change.instance_id, 'CurrentState': _state(change.current_state),
            'PreviousState': _state(change.previous_state)}


# -- attributes --------------------------------------------------------------------------------------

# Attributes with one value for every instance here.
_FIXED_ATTRIBUTES = {
    'rootDeviceName': ('RootDeviceName', {'Value': '/dev/sda1'}),
    'productCodes': ('ProductCodes', []),
    'ebsOptimized': ('EbsOptimized', {'Value': False}),
    'enaSupport': ('EnaSupport', {'Value': False}),
    'sriovNetSupport': ('SriovNetSupport', {}),
    'enclaveOptions': ('EnclaveOptions', {'Enabled': False}),
}
_RECORD_ATTRIBUTES = {
    'instanceType': ('InstanceType', lambda record: record.instance_type),
    'kernel': ('KernelId', lambda record: record.kernel_id),
    'ramdisk': ('RamdiskId', lambda record: record.ramdisk_id),
    'disableApiTermination': ('DisableApiTermination', lambda record: record.disable_api_termination),
    'disableApiStop': ('DisableApiStop', lambda record: record.disable_api_stop),
    'instanceInitiatedShutdownBehavior': ('InstanceInitiatedShutdownBehavior', lambda record: record.shutdown_behavior),
}
# ModifyInstanceAttribute's members, the wire attribute name of each, and the back-end's keyword.
_MODIFIABLE = {
    'InstanceType': ('instanceType', 'instance_type'),
    'UserData': ('userData', 'user_data'),
    'DisableApiTermination': ('disableApiTermination', 'disable_api_termination'),
    'DisableApiStop': ('disableApiStop', 'disable_api_stop'),
    'InstanceInitiatedShutdownBehavior': ('instanceInitiatedShutdownBehavior', 'shutdown_behavior'),
    'SourceDestCheck': ('sourceDestCheck', 'source_dest_check'),
    'Groups': ('groupSet', 'groups'),
}
_BOOLEAN_ATTRIBUTES = frozenset({'disableApiTermination', 'disableApiStop', 'sourceDestCheck'})


@action('DescribeInstanceAttribute')
def describe_instance_attribute(ctx, args):
    instance_id, attribute = args['InstanceId'], args['Attribute']
    (record,) = ctx.cloud.instances.describe(ctx.account_id, ids=[instance_id])
    result = {'InstanceId': instance_id}
    if attribute == 'userData':
        result['UserData'] = {'Value': ctx.cloud.instances.user_data(ctx.account_id, instance_id)}
    elif attribute == 'groupSet':
        eth0 = ctx.cloud.interfaces.by_instance([instance_id]).get(instance_id, ())
        result['Groups'] = _group_list(eth0[0].groups) if eth0 else []
    elif attribute == 'blockDeviceMapping':
        result['BlockDeviceMappings'] = [_block_device(attachment) for attachment in
                                         ctx.cloud.volumes.attached_to([instance_id]).get(instance_id, ())]
    elif attribute == 'sourceDestCheck':
        eth0 = ctx.cloud.interfaces.by_instance([instance_id]).get(instance_id, ())
        result['SourceDestCheck'] = {'Value': eth0[0].source_dest_check if eth0 else True}
    elif attribute in _RECORD_ATTRIBUTES:
        member, read = _RECORD_ATTRIBUTES[attribute]
        result[member] = {'Value': read(record)}
    elif attribute in _FIXED_ATTRIBUTES:
        member, value = _FIXED_ATTRIBUTES[attribute]
        result[member] = value
    else:
        raise EC2Error('InvalidParameterValue', f"Value ({attribute}) for parameter attribute is invalid.")
    return result


@action('ModifyInstanceAttribute')
def modify_instance_attribute(ctx, args):
    instance_id = args['InstanceId']
    _check_instance_id(instance_id)
    if args.get('BlockDeviceMappings') is not None:
        return _modify_block_devices(ctx, instance_id, args)
    changes = _requested_changes(args)
    source_dest_check = changes.pop('source_dest_check', None)
    groups = changes.pop('groups', None)
    if groups is not None:
        ctx.cloud.instances.describe(ctx.account_id, ids=[instance_id])      # ownership and existence
        interfaces = ctx.cloud.interfaces.by_instance([instance_id]).get(instance_id)
        if not interfaces:
            raise EC2Error('IncorrectInstanceState', f"The instance '{instance_id}' has no network interface left.")
        ctx.cloud.security_groups.set_interface_groups(ctx.account_id, interfaces[0].interface_id, groups)
    if changes:
        ctx.cloud.instances.modify(ctx.account_id, instance_id, **changes)
    if source_dest_check is not None:
        ctx.cloud.instances.describe(ctx.account_id, ids=[instance_id])      # ownership and existence
        interfaces = ctx.cloud.interfaces.by_instance([instance_id]).get(instance_id)
        if not interfaces:
            raise EC2Error('IncorrectInstanceState', f"The instance '{instance_id}' has no network interface left.")
        ctx.cloud.interfaces.modify(ctx.account_id, interfaces[0].interface_id, source_dest_check=source_dest_check)
    return {}


def _modify_block_devices(ctx, instance_id, args):
    """BlockDeviceMapping: DeleteOnTermination of volumes attached to the instance."""
    if any(name not in ('InstanceId', 'BlockDeviceMappings', 'DryRun') for name in args):
        raise EC2Error('InvalidParameterCombination', 'Only one attribute can be modified at a time.')
    ctx.cloud.instances.describe(ctx.account_id, ids=[instance_id])      # ownership and existence
    for mapping in args['BlockDeviceMappings'] or ():
        ebs = mapping.get('Ebs') or {}
        if not mapping.get('DeviceName') or ebs.get('DeleteOnTermination') is None:
            raise EC2Error('InvalidParameterValue', 'Each mapping needs DeviceName and Ebs.DeleteOnTermination.')
        ctx.cloud.volumes.set_delete_on_termination(ctx.account_id, instance_id, mapping['DeviceName'],
                                                    ebs['DeleteOnTermination'])
    return {}


def _requested_changes(args):
    """{back-end keyword: value} from either form: Member.Value, or Attribute + Value. What cannot be
    changed here is refused."""
    changes = {}
    for member, (attribute, keyword) in _MODIFIABLE.items():
        value = args.get(member) if member == 'Groups' else (args.get(member) or {}).get('Value')
        if value is not None:
            changes[keyword] = value
    if 'user_data' in changes:   # the model decoded UserData.Value; it is kept base64-encoded
        changes['user_data'] = base64.b64encode(changes['user_data']).decode('ascii')
    attribute, value = args.get('Attribute'), args.get('Value')
    if attribute is not None:
        by_attribute = {wire: keyword for wire, keyword in _MODIFIABLE.values()}
        if attribute not in by_attribute or value is None:
            raise EC2Error('UnsupportedOperation', f"The attribute '{attribute}' cannot be modified here.")
        if attribute == 'userData':
            value = _checked_user_data(value)
        elif attribute == 'groupSet':
            value = [value]
        elif attribute in _BOOLEAN_ATTRIBUTES:
            if value.lower() not in ('true', 'false'):
                raise EC2Error('InvalidParameterValue', f"Value ({value}) for parameter value is invalid.")
            value = value.lower() == 'true'
        changes[by_attribute[attribute]] = value
    unsupported = sorted(name for name in args if name not in ('InstanceId', 'Attribute', 'Value', 'DryRun',
                                                               *_MODIFIABLE))
    if unsupported:
        raise EC2Error('UnsupportedOperation', f"The attribute '{unsupported[0]}' cannot be modified here.")
    if not changes:
        raise EC2Error('MissingParameter', 'The request must name an attribute to modify.')
    if len(changes) > 1:
        raise EC2Error('InvalidParameterCombination', 'Only one attribute can be modified at a time.')
    return changes


@action('GetPasswordData')
def get_password_data(ctx, args):
    """Instances here run Linux images: there is no Windows password, so the data is empty, as AWS
    answers for a Linux instance."""
    instance_id = args['InstanceId']
    _check_instance_id(instance_id)
    ctx.cloud.instances.describe(ctx.account_id, ids=[instance_id])      # ownership and existence
    return {'InstanceId': instance_id, 'Timestamp': utcnow(), 'PasswordData': ''}


def _check_instance_id(instance_id):
    if not INSTANCE_ID.fullmatch(instance_id or ''):
        raise EC2Error('InvalidInstanceID.Malformed', f'Invalid id: "{instance_id}"')


# -- shapes ------------------------------------------------------------------------------------------

def _reservation(ctx, records, interfaces):
    first = records[0]
    region = ctx.cloud.config.region
    volumes = ctx.cloud.volumes.attached_to([record.instance_id for record in records])
    return {'ReservationId': first.reservation_id, 'OwnerId': first.owner, 'Groups': [],
            'Instances': [_instance_shape(record, region, interfaces.get(record.instance_id, ()),
                                          volumes.get(record.instance_id, ()))
                          for record in records]}


def _block_device(attachment):
    return {'DeviceName': attachment.device, 'Ebs': {
        'VolumeId': attachment.volume_id, 'Status': attachment.state, 'AttachTime': attachment.attached_at,
        'DeleteOnTermination': attachment.delete_on_termination}}


def _instance_shape(record, region, interfaces, volumes=()):
    private_dns = _private_dns_name(record.private_ip, region)
    shape = {
        'InstanceId': record.instance_id,
        'ImageId': record.image_id,
        'State': _state(record.state),
        'PrivateDnsName': private_dns,
        'PublicDnsName': _public_dns_name(record.public_ip),
        'StateTransitionReason': record.transition_reason or '',
        'KeyName': record.key_name,
        'AmiLaunchIndex': record.ami_launch_index,
        'InstanceType': record.instance_type,
        'LaunchTime': record.launch_time,
        'Placement': {'AvailabilityZone': record.zone, 'GroupName': record.placement_group or '',
                      'Tenancy': 'default'},
        'KernelId': record.kernel_id,
        'RamdiskId': record.ramdisk_id,
        'Monitoring': {'State': 'disabled'},
        'SubnetId': record.subnet_id,
        'VpcId': record.vpc_id,
        'PrivateIpAddress': record.private_ip,
        'PublicIpAddress': record.public_ip,
        'Architecture': 'x86_64',
        'RootDeviceType': 'ebs' if any(is_root_device(a.device) for a in volumes) else 'instance-store',
        'RootDeviceName': next((a.device for a in volumes if is_root_device(a.device)), '/dev/sda1'),
        'BlockDeviceMappings': [_block_device(attachment) for attachment in volumes],
        'VirtualizationType': 'paravirtual' if record.kernel_id else 'hvm',
        'Hypervisor': 'xen',
        'ClientToken': record.client_token or '',
        'Tags': tag_list(record.tags),
        'SecurityGroups': _group_list(interfaces[0].groups) if interfaces else [],
        'NetworkInterfaces': [_network_interface(record, interface, region) for interface in interfaces],
        'EbsOptimized': False,
        'EnaSupport': False,
        'SourceDestCheck': True,
        'CpuOptions': {'CoreCount': record.vcpus, 'ThreadsPerCore': 1},
        'PlatformDetails': 'Linux/UNIX',
        'UsageOperation': 'RunInstances',
    }
    if record.state_reason_code:
        shape['StateReason'] = {'Code': record.state_reason_code,
                                'Message': record.state_reason_message or record.state_reason_code}
    return shape


def _network_interface(record, interface, region):
    """One of the instance's interfaces, with the elastic IPs on its addresses."""
    return {
        'NetworkInterfaceId': interface.interface_id,
        'MacAddress': interface.mac,
        'PrivateIpAddress': interface.private_ip,
        'PrivateDnsName': _private_dns_name(interface.private_ip, region),
        'SubnetId': interface.subnet_id,
        'VpcId': interface.vpc_id,
        'OwnerId': interface.owner,
        'Description': interface.description,
        'Status': interface.status,
        'SourceDestCheck': interface.source_dest_check,
        'InterfaceType': 'interface',
        'Groups': _group_list(interface.groups),
        'Association': _association(interface, interface.private_ip),
        'Attachment': {'AttachmentId': interface.attachment_id, 'DeviceIndex': interface.device_index,
                       'Status': interface.attachment_status, 'AttachTime': interface.attached_at,
                       'DeleteOnTermination': interface.delete_on_termination},
        'PrivateIpAddresses': [{'Primary': primary, 'PrivateIpAddress': ip,
                                'PrivateDnsName': _private_dns_name(ip, region),
                                'Association': _association(interface, ip)}
                               for ip, primary in interface.addresses],
    }


def _group_list(groups):
    return [{'GroupId': group_id, 'GroupName': name} for group_id, name in groups]


def _association(interface, private_ip):
    for address, public_ip, _association_id in interface.public_ips:
        if address == private_ip:
            return {'PublicIp': public_ip, 'PublicDnsName': _public_dns_name(public_ip), 'IpOwnerId': interface.owner}
    return None


def _state(internal_state):
    name, code = ec2_state(internal_state)
    return {'Code': code, 'Name': name}


def _private_dns_name(private_ip, region):
    if not private_ip:
        return ''
    return f"ip-{private_ip.replace('.', '-')}.{region}.compute.internal"


def _public_dns_name(public_ip):
    # No DNS zone is served for public addresses, so the name that resolves everywhere is the
    # address itself (Eucalyptus does the same without DNS). Absent without a public address.
    return public_ip


def _status(record):
    """(summary status, reachability) of an instance, from its internal state."""
    state = State(record.state)
    if state in (State.RUNNING, State.REBOOTING):
        return 'ok', 'passed'
    if state is State.IMPAIRED:
        return 'impaired', 'failed'
    if state is State.PENDING:
        return 'initializing', 'initializing'
    return 'not-applicable', None


def _status_shape(record):
    status, reachability = _status(record)
    summary = {'Status': status}
    if reachability is not None:
        detail = {'Name': 'reachability', 'Status': reachability}
        if status == 'impaired':
            detail['ImpairedSince'] = record.state_changed_at
        summary['Details'] = [detail]
    return {'InstanceId': record.instance_id, 'AvailabilityZone': record.zone,
            'InstanceState': _state(record.state), 'InstanceStatus': summary,
            'SystemStatus': dict(summary), 'Events': []}
