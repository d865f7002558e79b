"""Tags on the caller's resources, and the tag helpers the other resource modules share."""
from backend.tags import FILTER_FIELDS, check_tags

from ..errors import EC2Error
from ..paging import paginate
from . import action


@action('CreateTags')
def create_tags(ctx, args):
    tags = [(tag.get('Key'), tag.get('Value', '')) for tag in args['Tags']]
    ctx.cloud.tags.create(ctx.account_id, args['Resources'], tags)
    return {}


@action('DeleteTags')
def delete_tags(ctx, args):
    # A tag given without a value deletes the key whatever its value; with one, only that pair.
    tags = [(tag.get('Key'), tag.get('Value')) for tag in args.get('Tags') or ()]
    if any(not key for key, _ in tags):
        raise EC2Error('InvalidTagKey.Malformed', 'Each tag to delete must have a key.')
    ctx.cloud.tags.delete(ctx.account_id, args['Resources'], tags)
    return {}


@action('DescribeTags')
def describe_tags(ctx, args):
    criteria = [(_filter_field(spec), spec['Values']) for spec in args.get('Filters') or ()]
    records = ctx.cloud.tags.describe(ctx.account_id, criteria)
    shapes = [{'ResourceId': record.resource_id, 'ResourceType': record.resource_type,
               'Key': record.key, 'Value': record.value} for record in records]
    shapes.sort(key=_position)
    page, next_token = paginate(shapes, args, _position)
    return {'Tags': page, 'NextToken': next_token}


def requested_tags(tag_specifications, resource_type):
    """[(key, value)] for `resource_type` from TagSpecifications, checked before anything is created;
    other resource types are refused."""
    return requested_tags_by_type(tag_specifications, (resource_type,)).get(resource_type, [])


def requested_tags_by_type(tag_specifications, resource_types):
    """{resource type: [(key, value)]} from TagSpecifications for the types a call creates, checked
    before anything is created; other resource types are refused."""
    by_type = {}
    for spec in tag_specifications or ():
        if spec.get('ResourceType') not in resource_types:
            raise EC2Error('InvalidParameterValue',
                           f"'{spec.get('ResourceType') or ''}' is not a valid taggable resource type for "
                           f"this operation; only {', '.join(resource_types)} can be tagged here.")
        by_type.setdefault(spec['ResourceType'], []).extend(
            (tag.get('Key'), tag.get('Value', '')) for tag in spec.get('Tags') or ())
    for resource_type, tags in by_type.items():
        check_tags(tags)
        by_type[resource_type] = list(dict(tags).items())     # a key given twice keeps its last value
    return by_type


def tag_list(tags):
    """A {key: value} dict as EC2's TagList, or None (element omitted) when there are no tags."""
    if not tags:
        return None
    return [{'Key': key, 'Value': value} for key, value in sorted(tags.items())]


def _filter_field(spec):
    name = spec.get('Name')
    if name not in FILTER_FIELDS:
        raise EC2Error('InvalidParameterValue', f"The filter '{name}' is invalid")
    if not spec.get('Values'):
        raise EC2Error('InvalidParameterValue', f"The filter '{name}' needs at least one value.")
    return name


def _position(shape):
    # Tags are listed by resource, then key; NUL sorts first, so the string orders like the pair.
    return f"{shape['ResourceId']}\0{shape['Key']}"
