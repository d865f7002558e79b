"""Key pairs: create, import, describe, delete — scoped to the caller's account."""
from ..errors import EC2Error
from ..filters import filter_items, shape_tags
from . import action
from .tags import requested_tags, tag_list

_FIELDS = {
    'key-name': lambda k: k['KeyName'],
    'key-pair-id': lambda k: k['KeyPairId'],
    'fingerprint': lambda k: k['KeyFingerprint'],
    'key-type': lambda k: k['KeyType'],
}


@action('CreateKeyPair')
def create_key_pair(ctx, args):
    key_type = args.get('KeyType', 'rsa')
    if key_type not in ('rsa', 'ed25519'):
        raise EC2Error('InvalidParameterValue', f"Invalid value '{key_type}' for KeyType")
    if args.get('KeyFormat', 'pem') != 'pem':
        raise EC2Error('InvalidParameterValue', 'Only the pem key format is supported')
    tags = requested_tags(args.get('TagSpecifications'), 'key-pair')
    key_pair, private_key = ctx.cloud.keypairs.create(ctx.account_id, args['KeyName'], key_type)
    result = _key_pair_shape(key_pair, _tag_new(ctx, key_pair, tags))
    result['KeyMaterial'] = private_key
    return result


@action('ImportKeyPair')
def import_key_pair(ctx, args):
    tags = requested_tags(args.get('TagSpecifications'), 'key-pair')
    key_pair = ctx.cloud.keypairs.import_key(ctx.account_id, args['KeyName'], args['PublicKeyMaterial'])
    return _key_pair_shape(key_pair, _tag_new(ctx, key_pair, tags))


@action('DescribeKeyPairs')
def describe_key_pairs(ctx, args):
    key_pairs = ctx.cloud.keypairs.describe(ctx.account_id, names=args.get('KeyNames'),
                                            ids=args.get('KeyPairIds'))
    include_public = args.get('IncludePublicKey', False)
    tags = ctx.cloud.tags.tags_of([key.key_pair_id for key in key_pairs])
    shapes = [_key_pair_shape(key, tags.get(key.key_pair_id), include_public) for key in key_pairs]
    return {'KeyPairs': filter_items(shapes, args.get('Filters'), _FIELDS, shape_tags)}


@action('DeleteKeyPair')
def delete_key_pair(ctx, args):
    name, key_pair_id = args.get('KeyName'), args.get('KeyPairId')
    if not name and not key_pair_id:
        raise EC2Error('MissingParameter', 'The request must contain the parameter KeyName or KeyPairId')
    ctx.cloud.keypairs.delete(ctx.account_id, name=name, key_pair_id=key_pair_id)
    return {'Return': True}


def _tag_new(ctx, key_pair, tags):
    """Tag a key pair just created (the tags were checked before it was); returns them as a dict."""
    if tags:
        ctx.cloud.tags.create(ctx.account_id, [key_pair.key_pair_id], tags)
    return dict(tags)


def _key_pair_shape(key_pair, tags=None, include_public=False):
    shape = {
        'KeyPairId': key_pair.key_pair_id,
        'KeyName': key_pair.name,
        'KeyFingerprint': key_pair.fingerprint,
        'KeyType': key_pair.key_type,
        'CreateTime': key_pair.created_at,
        'Tags': tag_list(tags) or [],
    }
    if include_public:
        shape['PublicKey'] = key_pair.public_key
    return shape
