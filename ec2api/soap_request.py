"""A SOAP request's operation element, as the Query parameters that say the same thing.

The walk is driven by two models at once: the WSDL's type of each element (which elements are
wrapped lists, which values are booleans) and botocore's input shape of the operation (how the
Query protocol names each member). An element maps to the member whose Query name is its own name
capitalized; a wrapped list `fooSet/item/bar` to `Bar.N` or `Foo.N` (whichever the operation has),
a list of structures `filterSet/item/…` to `Filter.N.…`, and a value wrapped in an element of its
own (`userData/data`) to the member's value. So a SOAP request reaches the parser that Query
requests reach with the very same parameters.
"""
import functools

from lxml import etree

from .service_model import wire_name

# Where the WSDL's names and the Query names differ by more than the rules above: (type, element) ->
# Query name. In API versions before 2011, RunInstances's groupSet/item/groupId held group *names*.
ALIASES = {('RunInstancesType', 'groupSet'): 'SecurityGroup'}


def query_params(element, schema, soap_operation, input_shape):
    """The Query parameters (flat, `Name.N.Member` spelling) of a validated operation element."""
    params = {}
    if input_shape is not None:
        _map_structure(element, schema.type(soap_operation.request_type), input_shape, schema, '', params)
    return params


def _map_structure(element, complex_type, shape, schema, prefix, params):
    members = _members_by_wire_name(shape)
    for child in _children(element):
        name = etree.QName(child).localname
        entry = complex_type.by_name.get(name)
        if entry is None:
            continue          # not in the schema: refused by validation before we get here
        field = entry[1]
        if field.is_simple:
            _map_value(child, field, members, [_capital(name)], prefix, params)
            continue
        child_type = schema.type(field.type)
        if child_type.list_item is not None:
            _map_list(child, complex_type.name, child_type, members, schema, prefix, params)
        else:
            _map_nested(child, child_type, members, schema, prefix, params)


def _map_value(child, field, members, candidates, prefix, params):
    found = _member(members, candidates)
    if found is not None:
        params[prefix + found[0]] = _text(child, field.type)


def _map_nested(child, child_type, members, schema, prefix, params):
    found = _member(members, [_capital(etree.QName(child).localname)])
    if found is None:
        return
    query_name, member = found
    if member.type_name == 'structure':
        _map_structure(child, child_type, member, schema, f'{prefix}{query_name}.', params)
        return
    # A scalar that the schema wraps in an element of its own, as userData/data.
    leaves = [(node, child_type.by_name[etree.QName(node).localname][1]) for node in _children(child)
              if etree.QName(node).localname in child_type.by_name]
    if len(leaves) == 1 and leaves[0][1].is_simple:
        node, field = leaves[0]
        params[prefix + query_name] = _text(node, field.type)


def _map_list(child, parent_type, list_type, members, schema, prefix, params):
    name = etree.QName(child).localname
    item_field = list_type.list_item
    item_type = None if item_field.is_simple else schema.type(item_field.type)
    leaf = item_type.fields[0] if item_type and len(item_type.fields) == 1 and item_type.fields[0].is_simple else None
    candidates = [ALIASES[(parent_type, name)]] if (parent_type, name) in ALIASES else []
    if leaf is not None:
        candidates.append(_capital(leaf.name))
    candidates += [_capital(name.removesuffix('Set')), _capital(name)]
    found = _member(members, candidates)
    if found is None:
        return
    query_name, member = found
    items = [node for node in _children(child) if etree.QName(node).localname == 'item']
    for index, item in enumerate(items, 1):
        item_prefix = f'{prefix}{query_name}.{index}'
        if member.type_name == 'list' and member.member.type_name == 'structure' and item_type is not None:
            _map_structure(item, item_type, member.member, schema, item_prefix + '.', params)
        elif item_field.is_simple:
            params[item_prefix] = _text(item, item_field.type)
        elif leaf is not None:
            value = item.find(f'{{{etree.QName(item).namespace}}}{leaf.name}')
            if value is not None:
                params[item_prefix] = _text(value, leaf.type)


def _member(members, candidates):
    for candidate in candidates:
        if candidate in members:
            return candidate, members[candidate]
    return None


@functools.lru_cache(maxsize=None)
def _members_by_wire_name(shape):
    return {wire_name(name, member): member for name, member in shape.members.items()}


def _children(element):
    return [node for node in element if isinstance(node.tag, str)]


def _text(node, schema_type):
    text = node.text or ''
    if schema_type == 'xs:boolean':
        return {'1': 'true', '0': 'false'}.get(text.strip(), text.strip())
    if schema_type != 'xs:string':
        return text.strip()      # xs:int, xs:dateTime…: the schema allows spaces around them
    return text


def _capital(name):
    return name[:1].upper() + name[1:]
