"""Machine, kernel and ramdisk images: what the caller owns, what is public, what is shared."""
from ..filters import filter_items, shape_tags
from ..paging import paginate
from ..renderer import format_timestamp
from . import action

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
    'root-device-name': lambda i: i.get('RootDeviceName'),
    'root-device-type': lambda i: i['RootDeviceType'],
    'state': lambda i: i['State'],
    'virtualization-type': lambda i: i['VirtualizationType'],
    'hypervisor': lambda i: i['Hypervisor'],
    'image-location': lambda i: i['ImageLocation'],
}


@action('DescribeImages')
def describe_images(ctx, args):
    images = ctx.cloud.images.describe(ctx.account_id, image_ids=args.get('ImageIds'),
                                       owners=args.get('Owners'),
                                       executable_by=args.get('ExecutableUsers'))
    shapes = filter_items([image_shape(image) for image in images], args.get('Filters'), _FIELDS, shape_tags)
    shapes.sort(key=lambda shape: shape['ImageId'])
    page, next_token = paginate(shapes, args, lambda shape: shape['ImageId'], 'ImageIds')
    return {'Images': page, 'NextToken': next_token}


def image_shape(image):
    """The EC2 Image structure for a back-end image record."""
    return {
        'ImageId': image.image_id,
        'ImageLocation': f'{image.owner}/{image.name}',
        'State': image.state,
        'OwnerId': image.owner,
        'CreationDate': format_timestamp(image.created_at),
        'Public': image.public,
        'Architecture': image.architecture,
        'ImageType': image.image_type,
        'KernelId': image.kernel_id,
        'RamdiskId': image.ramdisk_id,
        'Name': image.name,
        'Description': image.description,
        'RootDeviceType': 'instance-store',
        'RootDeviceName': image.root_device_name,
        'VirtualizationType': 'paravirtual' if image.kernel_id else 'hvm',
        'Hypervisor': 'xen',
        'PlatformDetails': 'Linux/UNIX',
        'UsageOperation': 'RunInstances',
        'BlockDeviceMappings': [],
        'Tags': [],
    }
