"""Turn flat EC2 Query parameters into the typed structure the operation's input shape describes.

`Filter.1.Name=x&Filter.1.Value.1=y` becomes `{'Filters': [{'Name': 'x', 'Values': ['y']}]}`, keyed
by botocore member names, exactly what boto3 would have been given. Values stay strings until the
model says otherwise, so "0777" is never turned into 511 unless the shape is an integer.
"""
import base64
import binascii
import datetime

from .errors import EC2Error
from .renderer import NOT_XML_CHARS
from .service_model import wire_name

# Parameters that belong to the envelope, not to any operation.
ENVELOPE_PARAMS = frozenset({
    'Action', 'Version', 'AWSAccessKeyId', 'Signature', 'SignatureMethod', 'SignatureVersion',
    'Timestamp', 'Expires', 'SecurityToken', 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date',
    'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Security-Token',
})

_LEAF = ''  # key under which a node keeps a scalar given for the same name as a prefix


def parse_params(operation_model, params):
    """Parse request parameters for an operation; raise EC2Error for missing or malformed ones."""
    tree = _build_tree(params)
    shape = operation_model.input_shape
    if shape is None:
        return {}
    return _parse_structure(shape, tree, prefix='')


def _build_tree(params):
    tree = {}
    for key, value in params.items():
        if key in ENVELOPE_PARAMS:
            continue
        node = tree
        *parents, last = key.split('.')
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else {_LEAF: child}
                node[part] = child
            node = child
        existing = node.get(last)
        if isinstance(existing, dict):
            existing[_LEAF] = value
        else:
            node[last] = value
    return tree


def _parse_structure(shape, node, prefix):
    if not isinstance(node, dict):
        raise _invalid(prefix.rstrip('.'), node)
    result = {}
    for member_name, member_shape in shape.members.items():
        name = wire_name(member_name, member_shape)
        if name in node:
            result[member_name] = _parse_value(member_shape, node[name], prefix + name)
    for required in shape.required_members:
        if required not in result:
            name = prefix + wire_name(required, shape.members[required])
            raise EC2Error('MissingParameter', f'The request must contain the parameter {name}')
    check = _STRUCTURE_CHECKS.get(shape.name)
    if check is not None:
        check(result)
    return result


def _check_filter(spec):
    # Every Describe* reads its Filters through here, so a nameless or valueless filter gets one answer.
    name = spec.get('Name')
    if not name:
        raise EC2Error('InvalidParameterValue', "The filter 'null' is invalid")
    if not spec.get('Values'):
        raise EC2Error('InvalidParameterValue', f"The filter '{name}' needs at least one value.")
    if len(spec['Values']) > MAX_FILTER_VALUES:
        raise EC2Error('FilterLimitExceeded', f"The filter '{name}' has more than {MAX_FILTER_VALUES} values.")


# EC2's limits on one request's filters: more than these is FilterLimitExceeded.
MAX_FILTERS = 50
MAX_FILTER_VALUES = 200


# Rules of a structure that its shape cannot express (the model marks no member of Filter required).
_STRUCTURE_CHECKS = {'Filter': _check_filter}


def _parse_value(shape, node, name):
    kind = shape.type_name
    if kind == 'structure':
        return _parse_structure(shape, node, name + '.')
    if kind == 'list':
        return _parse_list(shape, node, name)
    if kind == 'map':
        return _parse_map(shape, node, name)
    if isinstance(node, dict):
        # A scalar sent list-style, as boto 2 sends GetConsoleOutput's InstanceId.1.
        node = node.get(_LEAF, node.get('1'))
        if not isinstance(node, str):
            raise _invalid(name, node)
    return _SCALAR_PARSERS.get(kind, _as_string)(node, name)


def _parse_list(shape, node, name):
    if not isinstance(node, dict):
        # A single value given without an index: take it as a one-element list.
        return [_parse_value(shape.member, node, name)]
    items = []
    for index, child in node.items():
        if index == _LEAF:
            continue
        if not index.isdigit():
            raise EC2Error('InvalidParameterValue', f'Invalid list index in parameter {name}.{index}')
        items.append((int(index), child))
    items.sort(key=lambda pair: pair[0])
    if shape.name == 'FilterList' and len(items) > MAX_FILTERS:
        raise EC2Error('FilterLimitExceeded', f'The request has more than {MAX_FILTERS} filters.')
    return [_parse_value(shape.member, child, f'{name}.{index}') for index, child in items]


def _parse_map(shape, node, name):
    # EC2 maps travel as Name.N.Key / Name.N.Value pairs.
    if not isinstance(node, dict):
        raise _invalid(name, node)
    result = {}
    for index, entry in node.items():
        if not isinstance(entry, dict) or 'Key' not in entry:
            raise EC2Error('InvalidParameterValue', f'Invalid map entry {name}.{index}')
        key = _parse_value(shape.key, entry['Key'], f'{name}.{index}.Key')
        result[key] = _parse_value(shape.value, entry.get('Value', ''), f'{name}.{index}.Value')
    return result


def _invalid(name, value):
    shown = value if isinstance(value, str) else '(structured value)'
    return EC2Error('InvalidParameterValue', f"Invalid value '{shown}' for {name}")


def _as_string(value, name):
    # What XML cannot carry could never be shown back as sent (a tag value 'prod\x01x' would read
    # 'prodx', and filters or DeleteTags by what was seen would never match it): refused here.
    bad = NOT_XML_CHARS.search(value)
    if bad:
        raise EC2Error('InvalidParameterValue', f'The value of {name} contains the character '
                                                f'U+{ord(bad.group()):04X}, which cannot be represented in XML.')
    return value


def _as_integer(value, name):
    try:
        return int(value, 10)
    except ValueError:
        raise _invalid(name, value) from None


def _as_float(value, name):
    try:
        number = float(value)
    except ValueError:
        raise _invalid(name, value) from None
    if number != number or number in (float('inf'), float('-inf')):
        raise _invalid(name, value)
    return number


def _as_boolean(value, name):
    lowered = value.lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    raise _invalid(name, value)


def _as_timestamp(value, name):
    text = value.strip()
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise _invalid(name, value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def _as_blob(value, name):
    try:
        return base64.b64decode(value.encode('ascii'), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _invalid(name, value) from None


_SCALAR_PARSERS = {
    'string': _as_string,
    'integer': _as_integer,
    'long': _as_integer,
    'float': _as_float,
    'double': _as_float,
    'boolean': _as_boolean,
    'timestamp': _as_timestamp,
    'blob': _as_blob,
}
