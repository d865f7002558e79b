"""Machine, kernel and ramdisk images: what the caller owns, what is public, what is shared;
registering uploads, copying, sharing and deregistering."""
from backend.images import Registration, owner_alias

from ..errors import EC2Error
from ..filters import filter_items, shape_tags
from ..paging import paginate
from ..renderer import format_timestamp
from . import action
from .block_devices import image_block_device_shape, requested_block_devices
from .permissions import permission_changes, permission_list
from .tags import requested_tags, tag_list

_FIELDS = {
    'architecture': lambda i: i['Architecture'],
    'description': lambda i: i.get('Description'),
    'image-id': lambda i: i['ImageId'],
    'image-type': lambda i: i['ImageType'],
    'is-public': lambda i: i['Public'],
    'kernel-id': lambda i: i.get('KernelId'),
    'ramdisk-id': lambda i: i.get('RamdiskId'),
    'name': lambda i: i['Name'],
    'owner-id': lambda i: i['OwnerId'],
    'owner-alias': lambda i: i.get('ImageOwnerAlias'),
    'root-device-name': lambda i: i.get('RootDeviceName'),
    'root-device-type': lambda i: i['RootDeviceType'],
    'state': lambda i: i['State'],
    'virtualization-type': lambda i: i['VirtualizationType'],
    'hypervisor': lambda i: i['Hypervisor'],
    'image-location': lambda i: i['ImageLocation'],
    'block-device-mapping.device-name': lambda i: [m['DeviceName'] for m in i['BlockDeviceMappings']],
    'block-device-mapping.snapshot-id': lambda i: [m['Ebs'].get('SnapshotId') for m in i['BlockDeviceMappings']
                                                   if 'Ebs' in m],
    'block-device-mapping.volume-size': lambda i: [str(m['Ebs']['VolumeSize']) for m in i['BlockDeviceMappings']
                                                   if 'VolumeSize' in m.get('Ebs', {})],
    'block-device-mapping.volume-type': lambda i: [m['Ebs']['VolumeType'] for m in i['BlockDeviceMappings']
                                                   if 'Ebs' in m],
    'block-device-mapping.delete-on-termination': lambda i: [m['Ebs']['DeleteOnTermination']
                                                             for m in i['BlockDeviceMappings'] if 'Ebs' in m],
}


@action('DescribeImages')
def describe_images(ctx, args):
    images = ctx.cloud.images.describe(ctx.account_id, image_ids=args.get('ImageIds'),
                                       owners=args.get('Owners'),
                                       executable_by=args.get('ExecutableUsers'))
    tags = ctx.cloud.images.tags_of(ctx.account_id, [image.image_id for image in images])
    devices = ctx.cloud.images.block_devices_of([image.image_id for image in images
                                                 if image.root_device_type == 'ebs'])
    shapes = filter_items([image_shape(image, tags.get(image.image_id), devices.get(image.image_id, ()))
                           for image in images], args.get('Filters'), _FIELDS, shape_tags)
    shapes.sort(key=lambda shape: shape['ImageId'])
    page, next_token = paginate(shapes, args, lambda shape: shape['ImageId'], 'ImageIds')
    return {'Images': page, 'NextToken': next_token}


@action('RegisterImage')
def register_image(ctx, args):
    """An upload (named by ImageLocation) becomes an image; KernelId, RamdiskId and RootDeviceName
    say how a machine image boots. Without ImageLocation, BlockDeviceMapping maps the root device
    to a snapshot: an EBS-backed image."""
    devices = requested_block_devices(args.get('BlockDeviceMappings'))
    if not args.get('ImageLocation') and any(device.snapshot_id for device in devices):
        image = ctx.cloud.images.register_ebs(ctx.account_id, Registration(
            name=args.get('Name'), description=args.get('Description'), architecture=args.get('Architecture', 'x86_64'),
            kernel_id=args.get('KernelId'), ramdisk_id=args.get('RamdiskId'),
            root_device_name=args.get('RootDeviceName') or '/dev/sda1', tags=_image_tags(args)), devices)
        return {'ImageId': image.image_id}
    if devices:
        raise EC2Error('InvalidParameterValue', 'An image registered from an upload (ImageLocation) boots from '
                                                'that file; map its root to a snapshot instead for an EBS-backed image')
    location = args.get('ImageLocation')
    if not location:
        raise EC2Error('MissingParameter', 'The request must contain the parameter ImageLocation: the name '
                                           'of a finished upload')
    image = ctx.cloud.uploads.register(ctx.account_id, _upload_name(ctx.account_id, location), Registration(
        name=args['Name'], description=args.get('Description'), architecture=args.get('Architecture', 'x86_64'),
        kernel_id=args.get('KernelId'), ramdisk_id=args.get('RamdiskId'),
        root_device_name=args.get('RootDeviceName'), tags=_image_tags(args)))
    return {'ImageId': image.image_id}


@action('CopyImage')
def copy_image(ctx, args):
    region = ctx.cloud.config.region
    if args['SourceRegion'] != region:
        raise EC2Error('InvalidParameterValue', f"Images are copied within this cloud: SourceRegion must be "
                                                f"'{region}', not '{args['SourceRegion']}'")
    if args.get('Encrypted') or args.get('KmsKeyId') or args.get('DestinationOutpostArn'):
        raise EC2Error('InvalidParameterValue', 'Encrypted copies and copies to Outposts are not supported')
    image = ctx.cloud.images.copy(ctx.account_id, args['SourceImageId'],
                                  Registration(name=args['Name'], description=args.get('Description'),
                                               tags=_image_tags(args)))
    return {'ImageId': image.image_id}


@action('DeregisterImage')
def deregister_image(ctx, args):
    ctx.cloud.images.deregister(ctx.account_id, args['ImageId'])
    return {'Return': True}


@action('DescribeImageAttribute')
def describe_image_attribute(ctx, args):
    image_id, attribute = args['ImageId'], args['Attribute']
    images = ctx.cloud.images
    if attribute == 'launchPermission':
        public, accounts = images.launch_permissions(ctx.account_id, image_id)
        return {'ImageId': image_id, 'LaunchPermissions': permission_list(public, accounts)}
    readers = {
        'description': lambda found: {'Description': _value(found.description)},
        'kernel': lambda found: {'KernelId': _value(found.kernel_id)},
        'ramdisk': lambda found: {'RamdiskId': _value(found.ramdisk_id)},
        'blockDeviceMapping': lambda found: {'BlockDeviceMappings': [
            image_block_device_shape(device) for device in images.block_devices_of([image_id]).get(image_id, ())]},
        'productCodes': lambda found: {'ProductCodes': []},
    }
    if attribute not in readers:
        raise _unsupported_attribute(attribute)
    return {'ImageId': image_id, **readers[attribute](images.attributes(ctx.account_id, image_id))}


@action('ModifyImageAttribute')
def modify_image_attribute(ctx, args):
    """launchPermission (structured, or Attribute/OperationType/UserIds/UserGroups as older clients
    send it) and description (Description.Value, or Attribute/Value)."""
    image_id, attribute = args['ImageId'], args.get('Attribute')
    if attribute not in (None, 'launchPermission', 'description'):
        raise _unsupported_attribute(attribute)
    if args.get('ProductCodes') or args.get('OrganizationArns') or args.get('OrganizationalUnitArns'):
        raise EC2Error('InvalidParameterValue', 'Product codes and organization sharing are not supported')
    changes = permission_changes(args, 'LaunchPermission', 'UserGroups')
    description = _new_description(args)
    if changes is None and description is None:
        raise EC2Error('MissingParameter', 'Say what to change: LaunchPermission, or Description')
    if changes is not None:
        ctx.cloud.images.change_launch_permission(ctx.account_id, image_id, **changes)
    if description is not None:
        ctx.cloud.images.set_description(ctx.account_id, image_id, description)
    return {}


@action('ResetImageAttribute')
def reset_image_attribute(ctx, args):
    attribute = args['Attribute']
    if attribute == 'launchPermission':
        ctx.cloud.images.reset_launch_permission(ctx.account_id, args['ImageId'])
    elif attribute == 'description':
        ctx.cloud.images.set_description(ctx.account_id, args['ImageId'], None)
    else:
        raise _unsupported_attribute(attribute)
    return {}


def _new_description(args):
    if 'Description' in args:
        return args['Description'].get('Value', '')
    if args.get('Attribute') == 'description':
        return args.get('Value', '')
    return None


def _image_tags(args):
    return tuple(requested_tags(args.get('TagSpecifications'), 'image'))


def _upload_name(account_id, location):
    """ImageLocation is an upload's name, optionally `<own account id>/<name>` as DescribeImages shows it."""
    owner, separator, name = location.partition('/')
    return name if separator and owner == account_id else location


def _value(value):
    return {'Value': value} if value is not None else {}


def _unsupported_attribute(attribute):
    return EC2Error('InvalidParameterValue', f"Attribute '{attribute}' is not supported; use launchPermission, "
                                             'description, kernel, ramdisk, blockDeviceMapping or productCodes')


def image_shape(image, tags=None, block_devices=()):
    """The EC2 Image structure for a back-end image record, with the caller's tags on it."""
    shape = {
        'ImageId': image.image_id,
        'ImageLocation': f'{image.owner}/{image.name}',
        'State': image.state,
        'OwnerId': image.owner,
        'ImageOwnerAlias': owner_alias(image.owner),
        'CreationDate': format_timestamp(image.created_at),
        'Public': image.public,
        'Architecture': image.architecture,
        'ImageType': image.image_type,
        'KernelId': image.kernel_id,
        'RamdiskId': image.ramdisk_id,
        'Name': image.name,
        'Description': image.description,
        'RootDeviceType': image.root_device_type,
        'RootDeviceName': image.root_device_name,
        'VirtualizationType': 'paravirtual' if image.kernel_id else 'hvm',
        'Hypervisor': 'xen',
        'PlatformDetails': 'Linux/UNIX',
        'UsageOperation': 'RunInstances',
        'BlockDeviceMappings': [image_block_device_shape(device) for device in block_devices],
        'Tags': tag_list(tags),
    }
    if image.state_reason:
        shape['StateReason'] = {'Code': 'Server.ImageCreationFailed', 'Message': image.state_reason}
    return shape
