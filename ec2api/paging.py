"""Item-based pagination shared by the Describe* actions.

The NextToken is opaque to clients: the id of the last item returned, so a page boundary stays put
when items are added or removed elsewhere in the listing.
"""
import base64
import binascii

from .errors import EC2Error

MIN_RESULTS, MAX_RESULTS = 5, 1000


def page_bounds(args, explicit_ids_param=None):
    """Validate MaxResults/NextToken; return (limit or None, id after which to start or None)."""
    limit, token = args.get('MaxResults'), args.get('NextToken')
    if explicit_ids_param and args.get(explicit_ids_param) and (limit is not None or token):
        raise EC2Error('InvalidParameterCombination',
                       f'The parameter {explicit_ids_param} cannot be used with the parameter MaxResults')
    if limit is not None and not MIN_RESULTS <= limit <= MAX_RESULTS:
        raise EC2Error('InvalidParameterValue',
                       f'Value ( {limit} ) for parameter maxResults is invalid. '
                       f'Expecting a value between {MIN_RESULTS} and {MAX_RESULTS}.')
    return limit, decode_token(token) if token else None


def paginate(items, args, id_of, explicit_ids_param=None):
    """Slice already-sorted (by id) items into one page; return (page, next_token or None)."""
    limit, after = page_bounds(args, explicit_ids_param)
    if after is not None:
        items = [item for item in items if id_of(item) > after]
    if limit is None or len(items) <= limit:
        return items, None
    page = items[:limit]
    return page, encode_token(id_of(page[-1]))


def encode_token(last_id):
    return base64.urlsafe_b64encode(last_id.encode('utf-8')).decode('ascii')


def decode_token(token):
    try:
        return base64.urlsafe_b64decode(token.encode('ascii')).decode('utf-8')
    except (binascii.Error, UnicodeError, ValueError):
        raise EC2Error('InvalidNextToken', 'The specified NextToken is not valid.') from None
