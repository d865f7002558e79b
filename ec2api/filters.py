"""One filter engine for every Describe* action.

A resource module declares which filter names it knows and how to read each from an item; this
module turns `Filters=[{'Name','Values'}]` into a predicate with EC2 semantics: values of one filter
are OR-ed, filters are AND-ed, `*` and `?` are wildcards (`\\` escapes them), and `tag:KEY`,
`tag-key`, `tag-value` work wherever the item has tags. An unknown name is InvalidParameterValue.
"""
from backend.matching import wildcard

from .errors import EC2Error
from .paging import paginate


def compile_filters(filters, fields, tags_of=None):
    """Return predicate(item) for the request's filters.

    fields: filter name -> function(item) returning a value or an iterable of values (None: no value).
    tags_of: function(item) -> {key: value}, or None if the resource has no tags.
    """
    tests = [_compile_one(spec, fields, tags_of) for spec in filters or ()]

    def matches(item):
        return all(test(item) for test in tests)
    return matches


def filter_items(items, filters, fields, tags_of=None):
    if not filters:
        return list(items)
    predicate = compile_filters(filters, fields, tags_of)
    return [item for item in items if predicate(item)]


def filtered_page(args, shapes, fields, id_key, ids_param):
    """The request's filters applied to item shapes, then one page of them: (page, next token)."""
    return paginate(filter_items(shapes, args.get('Filters'), fields, shape_tags), args, lambda shape: shape[id_key],
                    ids_param)


def shape_tags(shape):
    """Tags of an item in EC2 output shape ({'Tags': [{'Key', 'Value'}]}) as a dict."""
    return {tag['Key']: tag['Value'] for tag in shape.get('Tags') or ()}


def _compile_one(spec, fields, tags_of):
    name = spec.get('Name')
    if not name:
        raise EC2Error('InvalidParameterValue', "The filter 'null' is invalid")
    patterns = [wildcard(value) for value in spec.get('Values') or ()]
    if not patterns:
        raise EC2Error('InvalidParameterValue', f"The filter '{name}' needs at least one value.")
    if tags_of is not None and name.startswith('tag:'):
        key = name[4:]
        return lambda item: _any_match(patterns, _tag_value(tags_of(item), key))
    if tags_of is not None and name == 'tag-key':
        return lambda item: _any_match(patterns, tags_of(item).keys())
    if tags_of is not None and name == 'tag-value':
        return lambda item: _any_match(patterns, tags_of(item).values())
    reader = fields.get(name)
    if reader is None:
        raise EC2Error('InvalidParameterValue', f"The filter '{name}' is invalid")
    return lambda item: _any_match(patterns, reader(item))


def _tag_value(tags, key):
    return (tags[key],) if key in tags else ()


def _any_match(patterns, values):
    if values is None:
        return False
    if isinstance(values, (str, bool, int)):
        values = (values,)
    for value in values:
        text = _as_filter_text(value)
        if any(pattern(text) for pattern in patterns):
            return True
    return False


def _as_filter_text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)
