"""EBS snapshots: create them (of a volume, or of an instance's volumes at one instant), copy, describe,
share (createVolumePermission) and delete them."""
from ..errors import EC2Error
from ..filters import filtered_page
from ..paging import encode_token, page_bounds
from . import action, refuse_unsupported
from .permissions import permission_changes, permission_list
from .tags import requested_tags, tag_list

_FIELDS = {
    'snapshot-id': lambda s: s['SnapshotId'],
    'volume-id': lambda s: s['VolumeId'],
    'volume-size': lambda s: str(s['VolumeSize']),
    'status': lambda s: s['State'],
    'progress': lambda s: s['Progress'],
    'owner-id': lambda s: s['OwnerId'],
    'owner-alias': lambda s: s.get('OwnerAlias', ''),
    'description': lambda s: s['Description'],
    'start-time': lambda s: s['StartTime'],
    'encrypted': lambda s: s['Encrypted'],
    'storage-tier': lambda s: s['StorageTier'],
}
_ATTRIBUTES = ('createVolumePermission', 'productCodes')


@action('CreateSnapshot')
def create_snapshot(ctx, args):
    refuse_unsupported(args, ('VolumeId', 'Description', 'TagSpecifications'), 'CreateSnapshot')
    if not args.get('VolumeId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter VolumeId')
    tags = requested_tags(args.get('TagSpecifications'), 'snapshot')
    snapshot = ctx.cloud.volume_snapshots.create(ctx.account_id, args['VolumeId'], args.get('Description'))
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [snapshot.snapshot_id], tags)
    return snapshot_shape(snapshot, dict(tags))


@action('CreateSnapshots')
def create_snapshots(ctx, args):
    refuse_unsupported(args, ('InstanceSpecification', 'Description', 'TagSpecifications', 'CopyTagsFromSource'),
                       'CreateSnapshots')
    specification = args.get('InstanceSpecification') or {}
    if not specification.get('InstanceId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter InstanceSpecification.InstanceId')
    if args.get('CopyTagsFromSource') not in (None, 'volume'):
        raise EC2Error('InvalidParameterValue', "CopyTagsFromSource must be 'volume'")
    tags = requested_tags(args.get('TagSpecifications'), 'snapshot')
    snapshots = ctx.cloud.volume_snapshots.create_for_instance(
        ctx.account_id, specification['InstanceId'], specification.get('ExcludeDataVolumeIds') or (),
        args.get('Description'))
    volume_tags = ctx.cloud.tags.tags_of([s.volume_id for s in snapshots]) if args.get('CopyTagsFromSource') else {}
    shapes = []
    for snapshot in snapshots:
        wanted = {**dict(volume_tags.get(snapshot.volume_id) or {}), **dict(tags)}
        if wanted:
            ctx.cloud.tags.create(ctx.account_id, [snapshot.snapshot_id], list(wanted.items()))
        shape = snapshot_shape(snapshot, wanted)
        shapes.append({key: shape[key] for key in ('SnapshotId', 'VolumeId', 'State', 'VolumeSize', 'StartTime',
                                                   'Progress', 'OwnerId', 'Description', 'Encrypted', 'Tags')})
    return {'Snapshots': shapes}


@action('CopySnapshot')
def copy_snapshot(ctx, args):
    refuse_unsupported(args, ('SourceRegion', 'SourceSnapshotId', 'Description', 'DestinationRegion',
                              'TagSpecifications', 'PresignedUrl', 'Encrypted'), 'CopySnapshot')
    region = ctx.cloud.config.region
    for parameter in ('SourceRegion', 'SourceSnapshotId'):
        if not args.get(parameter):
            raise EC2Error('MissingParameter', f'The request must contain the parameter {parameter}')
    if args['SourceRegion'] != region or args.get('DestinationRegion') not in (None, region):
        raise EC2Error('InvalidParameterValue', f'Snapshots are copied within this cloud\'s one region, {region}')
    if args.get('Encrypted'):
        raise EC2Error('UnsupportedOperation', 'Encrypted snapshots are not offered by this cloud.')
    tags = requested_tags(args.get('TagSpecifications'), 'snapshot')
    snapshot = ctx.cloud.volume_snapshots.copy(ctx.account_id, args['SourceSnapshotId'], args.get('Description'))
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [snapshot.snapshot_id], tags)
    return {'SnapshotId': snapshot.snapshot_id, 'Tags': tag_list(dict(tags))}


@action('DeleteSnapshot')
def delete_snapshot(ctx, args):
    if not args.get('SnapshotId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter SnapshotId')
    ctx.cloud.volume_snapshots.delete(ctx.account_id, args['SnapshotId'])
    return {}


@action('DescribeSnapshots')
def describe_snapshots(ctx, args):
    ids, service = args.get('SnapshotIds'), ctx.cloud.volume_snapshots
    narrowing = dict(owners=args.get('OwnerIds'), restorable_by=args.get('RestorableByUserIds'))
    if args.get('Filters'):
        snapshots = service.describe(ctx.account_id, ids, **narrowing)
        page, token = filtered_page(args, _shapes(ctx, snapshots), _FIELDS, 'SnapshotId', 'SnapshotIds')
        return {'Snapshots': page, 'NextToken': token}
    # Unfiltered: the page is cut by the database, so a long listing costs the same per item.
    limit, after = page_bounds(args, 'SnapshotIds')
    snapshots = service.describe(ctx.account_id, ids, **narrowing, after=after,
                                 limit=None if limit is None else limit + 1)
    more = limit is not None and len(snapshots) > limit
    snapshots = snapshots[:limit] if more else snapshots
    return {'Snapshots': _shapes(ctx, snapshots),
            'NextToken': encode_token(snapshots[-1].snapshot_id) if more else None}


@action('DescribeSnapshotAttribute')
def describe_snapshot_attribute(ctx, args):
    attribute, snapshot_id = _attribute(args)
    public, accounts = ctx.cloud.volume_snapshots.volume_permissions(ctx.account_id, snapshot_id)
    if attribute == 'productCodes':
        return {'SnapshotId': snapshot_id, 'ProductCodes': []}
    return {'SnapshotId': snapshot_id, 'CreateVolumePermissions': permission_list(public, accounts)}


@action('ModifySnapshotAttribute')
def modify_snapshot_attribute(ctx, args):
    if args.get('Attribute') not in (None, 'createVolumePermission'):
        raise EC2Error('InvalidParameterValue', f"Value ({args['Attribute']}) for parameter attribute is invalid. "
                                                'Only createVolumePermission can be modified.')
    if not args.get('SnapshotId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter SnapshotId')
    changes = permission_changes(args, 'CreateVolumePermission', 'GroupNames')
    if changes is None:
        raise EC2Error('MissingParameter', 'Say what to change: CreateVolumePermission, or OperationType with '
                                           'UserIds or GroupNames')
    ctx.cloud.volume_snapshots.change_volume_permission(ctx.account_id, args['SnapshotId'], **changes)
    return {}


@action('ResetSnapshotAttribute')
def reset_snapshot_attribute(ctx, args):
    attribute, snapshot_id = _attribute(args)
    if attribute != 'createVolumePermission':
        raise EC2Error('InvalidParameterValue', 'Only createVolumePermission can be reset.')
    ctx.cloud.volume_snapshots.reset_volume_permission(ctx.account_id, snapshot_id)
    return {}


def _attribute(args):
    if not args.get('SnapshotId'):
        raise EC2Error('MissingParameter', 'The request must contain the parameter SnapshotId')
    if args.get('Attribute') not in _ATTRIBUTES:
        raise EC2Error('InvalidParameterValue', f"Value ({args.get('Attribute')}) for parameter attribute is invalid. "
                                                f"Valid values: {', '.join(_ATTRIBUTES)}.")
    return args['Attribute'], args['SnapshotId']


def _shapes(ctx, snapshots):
    # Tags are the owner's: an account sees none on snapshots shared with it.
    tags = ctx.cloud.tags.tags_of([s.snapshot_id for s in snapshots if s.owner == ctx.account_id])
    return [snapshot_shape(snapshot, tags.get(snapshot.snapshot_id)) for snapshot in snapshots]


def snapshot_shape(snapshot, tags=None):
    shape = {
        'SnapshotId': snapshot.snapshot_id, 'VolumeId': snapshot.volume_id, 'State': snapshot.state,
        'StartTime': snapshot.started_at, 'Progress': f'{snapshot.progress}%', 'OwnerId': snapshot.owner,
        'Description': snapshot.description, 'VolumeSize': snapshot.volume_size_gib, 'Encrypted': False,
        'StorageTier': 'standard', 'Tags': tag_list(tags)}
    if snapshot.state_message:
        shape['StateMessage'] = snapshot.state_message
    return shape
