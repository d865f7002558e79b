"""Placement groups: `cluster` keeps its instances on one host, `spread` puts each on its own."""
from ..errors import EC2Error
from ..filters import filter_items, shape_tags
from . import action
from .tags import requested_tags, tag_list

_FIELDS = {
    'group-name': lambda g: g['GroupName'],
    'group-id': lambda g: g['GroupId'],
    'group-arn': lambda g: g['GroupArn'],
    'state': lambda g: g['State'],
    'strategy': lambda g: g['Strategy'],
}


@action('CreatePlacementGroup')
def create_placement_group(ctx, args):
    for required in ('GroupName', 'Strategy'):
        if not args.get(required):
            raise EC2Error('MissingParameter', f'The request must contain the parameter {required}')
    tags = requested_tags(args.get('TagSpecifications'), 'placement-group')
    group = ctx.cloud.placement_groups.create(ctx.account_id, args['GroupName'], args['Strategy'])
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [group.group_id], tags)
    return {'PlacementGroup': _group_shape(group, dict(tags), ctx.cloud.config.region)}


@action('DeletePlacementGroup')
def delete_placement_group(ctx, args):
    ctx.cloud.placement_groups.delete(ctx.account_id, args['GroupName'])
    return {}


@action('DescribePlacementGroups')
def describe_placement_groups(ctx, args):
    groups = ctx.cloud.placement_groups.describe(ctx.account_id, names=args.get('GroupNames'),
                                                 group_ids=args.get('GroupIds'))
    tags = ctx.cloud.tags.tags_of([group.group_id for group in groups])
    region = ctx.cloud.config.region
    shapes = [_group_shape(group, tags.get(group.group_id), region) for group in groups]
    return {'PlacementGroups': filter_items(shapes, args.get('Filters'), _FIELDS, shape_tags)}


def _group_shape(group, tags, region):
    return {
        'GroupName': group.name,
        'GroupId': group.group_id,
        'GroupArn': f'arn:aws:ec2:{region}:{group.owner}:placement-group/{group.name}',
        'State': 'available',
        'Strategy': group.strategy,
        'Tags': tag_list(tags),
    }
