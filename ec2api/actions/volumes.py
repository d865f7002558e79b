"""EBS volumes: create, describe, modify and delete them, attach and detach them, their status and
attributes."""
from backend.storage.volumes import CreateRequest, effective_iops

from ..errors import EC2Error
from ..filters import filtered_page
from ..paging import encode_token, page_bounds
from . import action, refuse_unsupported
from .tags import requested_tags, tag_list

_FIELDS = {
    'volume-id': lambda v: v['VolumeId'],
    'availability-zone': lambda v: v['AvailabilityZone'],
    'create-time': lambda v: v['CreateTime'],
    'size': lambda v: str(v['Size']),
    'snapshot-id': lambda v: v.get('SnapshotId') or '',
    'status': lambda v: v['State'],
    'volume-type': lambda v: v['VolumeType'],
    'encrypted': lambda v: v['Encrypted'],
    'multi-attach-enabled': lambda v: v['MultiAttachEnabled'],
    'attachment.attach-time': lambda v: [a['AttachTime'] for a in v['Attachments']],
    'attachment.delete-on-termination': lambda v: [a['DeleteOnTermination'] for a in v['Attachments']],
    'attachment.device': lambda v: [a['Device'] for a in v['Attachments']],
    'attachment.instance-id': lambda v: [a['InstanceId'] for a in v['Attachments']],
    'attachment.status': lambda v: [a['State'] for a in v['Attachments']],
}
_STATUS_FIELDS = {
    'availability-zone': lambda s: s['AvailabilityZone'],
    'volume-status.status': lambda s: s['VolumeStatus']['Status'],
    'volume-status.details-name': lambda s: [d['Name'] for d in s['VolumeStatus']['Details']],
    'volume-status.details-status': lambda s: [d['Status'] for d in s['VolumeStatus']['Details']],
}
_MODIFICATION_FIELDS = {
    'volume-id': lambda m: m['VolumeId'],
    'modification-state': lambda m: m['ModificationState'],
    'start-time': lambda m: m['StartTime'],
    'target-size': lambda m: str(m['TargetSize']),
    'target-volume-type': lambda m: m['TargetVolumeType'],
    'target-iops': lambda m: str(m['TargetIops']),
    'target-throughput': lambda m: str(m['TargetThroughput']),
    'target-multi-attach-enabled': lambda m: m['TargetMultiAttachEnabled'],
    'original-size': lambda m: str(m['OriginalSize']),
    'original-volume-type': lambda m: m['OriginalVolumeType'],
    'original-iops': lambda m: str(m['OriginalIops']),
    'original-throughput': lambda m: str(m['OriginalThroughput']),
    'original-multi-attach-enabled': lambda m: m['OriginalMultiAttachEnabled'],
}
_CREATE_PARAMETERS = ('AvailabilityZone', 'Size', 'SnapshotId', 'VolumeType', 'Iops', 'Throughput', 'Encrypted',
                      'MultiAttachEnabled', 'TagSpecifications', 'ClientToken')


@action('CreateVolume')
def create_volume(ctx, args):
    refuse_unsupported(args, _CREATE_PARAMETERS, 'CreateVolume')
    tags = requested_tags(args.get('TagSpecifications'), 'volume')
    volume = ctx.cloud.volumes.create(ctx.account_id, CreateRequest(
        zone=args.get('AvailabilityZone'), size_gib=args.get('Size'), volume_type=args.get('VolumeType'),
        iops=args.get('Iops'), throughput=args.get('Throughput'), snapshot_id=args.get('SnapshotId'),
        encrypted=bool(args.get('Encrypted')), multi_attach=bool(args.get('MultiAttachEnabled')),
        client_token=args.get('ClientToken')))
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [volume.volume_id], tags)
    return volume_shape(volume, dict(tags))


@action('DeleteVolume')
def delete_volume(ctx, args):
    ctx.cloud.volumes.delete(ctx.account_id, args.get('VolumeId'))
    return {}


@action('DescribeVolumes')
def describe_volumes(ctx, args):
    ids = args.get('VolumeIds')
    if args.get('Filters'):
        volumes = ctx.cloud.volumes.describe(ctx.account_id, ids)
        page, token = filtered_page(args, _shapes(ctx, volumes), _FIELDS, 'VolumeId', 'VolumeIds')
        return {'Volumes': page, 'NextToken': token}
    # Unfiltered: the page is cut by the database, so a long listing costs the same per item.
    limit, after = page_bounds(args, 'VolumeIds')
    volumes = ctx.cloud.volumes.describe(ctx.account_id, ids, after=after, limit=None if limit is None else limit + 1)
    more = limit is not None and len(volumes) > limit
    volumes = volumes[:limit] if more else volumes
    return {'Volumes': _shapes(ctx, volumes), 'NextToken': encode_token(volumes[-1].volume_id) if more else None}


@action('ModifyVolume')
def modify_volume(ctx, args):
    if args.get('MultiAttachEnabled'):
        raise EC2Error('UnsupportedOperation', 'Multi-Attach is not offered by this cloud.')
    modification = ctx.cloud.volumes.modify(ctx.account_id, args.get('VolumeId'), args.get('Size'),
                                            args.get('VolumeType'), args.get('Iops'), args.get('Throughput'))
    return {'VolumeModification': _modification_shape(modification)}


@action('DescribeVolumesModifications')
def describe_volumes_modifications(ctx, args):
    modifications = ctx.cloud.volumes.modifications(ctx.account_id, args.get('VolumeIds'))
    page, token = filtered_page(args, [_modification_shape(m) for m in modifications], _MODIFICATION_FIELDS,
                                'VolumeId', 'VolumeIds')
    return {'VolumesModifications': page, 'NextToken': token}


def _modification_shape(modification):
    (original_size, original_type, original_iops, original_throughput) = modification.original
    (target_size, target_type, target_iops, target_throughput) = modification.target
    shape = {'VolumeId': modification.volume_id, 'ModificationState': modification.state,
             'Progress': 100 if modification.state == 'completed' else 0,
             'TargetSize': target_size, 'TargetVolumeType': target_type, 'TargetIops': target_iops,
             'TargetThroughput': target_throughput, 'TargetMultiAttachEnabled': False,
             'OriginalSize': original_size, 'OriginalVolumeType': original_type, 'OriginalIops': original_iops,
             'OriginalThroughput': original_throughput, 'OriginalMultiAttachEnabled': False,
             'StartTime': modification.started_at}
    if modification.ended_at:
        shape['EndTime'] = modification.ended_at
    return shape


@action('AttachVolume')
def attach_volume(ctx, args):
    refuse_unsupported(args, ('Device', 'InstanceId', 'VolumeId'), 'AttachVolume')
    for required in ('Device', 'InstanceId', 'VolumeId'):
        if not args.get(required):
            raise EC2Error('MissingParameter', f'The request must contain the parameter {required}')
    return _attachment_shape(ctx.cloud.volumes.attach(ctx.account_id, args['VolumeId'], args['InstanceId'],
                                                      args['Device']))


@action('DetachVolume')
def detach_volume(ctx, args):
    if not args.get('VolumeId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter VolumeId')
    return _attachment_shape(ctx.cloud.volumes.detach(ctx.account_id, args['VolumeId'], args.get('InstanceId'),
                                                      args.get('Device'), bool(args.get('Force'))))


@action('DescribeVolumeStatus')
def describe_volume_status(ctx, args):
    volumes = ctx.cloud.volumes.describe(ctx.account_id, args.get('VolumeIds'))
    statuses = [{'VolumeId': v.volume_id, 'AvailabilityZone': v.zone, 'Actions': [], 'Events': [],
                 'VolumeStatus': {'Status': 'ok', 'Details': [{'Name': 'io-enabled', 'Status': 'passed'},
                                                              {'Name': 'io-performance', 'Status': 'not-applicable'}]}}
                for v in volumes]
    page, token = filtered_page(args, statuses, _STATUS_FIELDS, 'VolumeId', 'VolumeIds')
    return {'VolumeStatuses': page, 'NextToken': token}


@action('DescribeVolumeAttribute')
def describe_volume_attribute(ctx, args):
    attribute = args.get('Attribute')
    if attribute not in ('autoEnableIO', 'productCodes'):
        raise EC2Error('InvalidParameterValue', f"Value ({attribute}) for parameter attribute is invalid.")
    (volume,) = ctx.cloud.volumes.describe(ctx.account_id, [args.get('VolumeId')])
    if attribute == 'autoEnableIO':
        return {'VolumeId': volume.volume_id, 'AutoEnableIO': {'Value': volume.auto_enable_io}}
    return {'VolumeId': volume.volume_id, 'ProductCodes': []}


@action('ModifyVolumeAttribute')
def modify_volume_attribute(ctx, args):
    wanted = args.get('AutoEnableIO')
    if not wanted or wanted.get('Value') is None:
        raise EC2Error('MissingParameter', 'The request must contain the parameter AutoEnableIO')
    ctx.cloud.volumes.set_auto_enable_io(ctx.account_id, args.get('VolumeId'), wanted['Value'])
    return {}


def _shapes(ctx, volumes):
    tags = ctx.cloud.tags.tags_of([volume.volume_id for volume in volumes])
    return [volume_shape(volume, tags.get(volume.volume_id)) for volume in volumes]


def volume_shape(volume, tags=None):
    return {
        'VolumeId': volume.volume_id, 'Size': volume.size_gib, 'SnapshotId': volume.snapshot_id or '',
        'AvailabilityZone': volume.zone, 'State': volume.state, 'CreateTime': volume.created_at,
        'Attachments': [_attachment_shape(attachment) for attachment in volume.attachments],
        'VolumeType': volume.volume_type, 'Iops': effective_iops(volume.volume_type, volume.size_gib, volume.iops),
        'Throughput': volume.throughput, 'Encrypted': False, 'MultiAttachEnabled': False,
        'Tags': tag_list(tags)}


def _attachment_shape(attachment):
    return {'VolumeId': attachment.volume_id, 'InstanceId': attachment.instance_id, 'Device': attachment.device,
            'State': attachment.state, 'AttachTime': attachment.attached_at,
            'DeleteOnTermination': attachment.delete_on_termination}
