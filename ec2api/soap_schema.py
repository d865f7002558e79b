"""The EC2 WSDLs in ec2api/wsdl, read once per version: operations, the fields of every type in
document order, and the XML Schema that validates a version's messages.

Everything the SOAP protocol does per operation comes from here: which element names a request's
parts, which of its elements are wrapped lists, which values are booleans, in which order a
response's elements must come and which of them a version knows at all.
"""
import dataclasses
import functools
import pathlib
import re
import threading

from lxml import etree

XS = 'http://www.w3.org/2001/XMLSchema'
WSDL = 'http://schemas.xmlsoap.org/wsdl/'
WSDL_SOAP = 'http://schemas.xmlsoap.org/wsdl/soap/'
NAMESPACE_PREFIX = 'http://ec2.amazonaws.com/doc/'
WSDL_DIRECTORY = pathlib.Path(__file__).with_name('wsdl')
_VERSION_FILE = re.compile(r'ec2-(\d{4}-\d{2}-\d{2})\.wsdl')
_per_thread = threading.local()


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: str            # a complex type of the schema, or a built-in one as 'xs:string', 'xs:boolean'…
    required: bool
    repeated: bool

    @property
    def is_simple(self):
        return self.type.startswith('xs:')


@dataclasses.dataclass(frozen=True)
class ComplexType:
    name: str
    fields: tuple        # Field, in the order the type's sequence fixes (a choice's alternatives in a row)

    @functools.cached_property
    def by_name(self):
        return {field.name: (position, field) for position, field in enumerate(self.fields)}

    @property
    def list_item(self):
        """The `item` field of a wrapped list (`<xSet><item>…</item>…</xSet>`), else None."""
        if len(self.fields) == 1 and self.fields[0].name == 'item' and self.fields[0].repeated:
            return self.fields[0]
        return None


@dataclasses.dataclass(frozen=True)
class Operation:
    name: str
    request_type: str
    response_element: str
    response_type: str
    soap_action: str


class ApiSchema:
    """One API version's WSDL."""

    def __init__(self, version, path):
        self.version = version
        self.namespace = f'{NAMESPACE_PREFIX}{version}/'
        wsdl = etree.parse(str(path)).getroot()
        self._schema_element = wsdl.find(f'{{{WSDL}}}types/{{{XS}}}schema')
        elements = {e.get('name'): _type_name(e, e.get('type'))
                    for e in self._schema_element.findall(f'{{{XS}}}element')}
        groups = {g.get('name'): g for g in self._schema_element.findall(f'{{{XS}}}group')}
        self.types = {t.get('name'): ComplexType(t.get('name'), tuple(_fields(t, groups)))
                      for t in self._schema_element.findall(f'{{{XS}}}complexType')}
        self.operations = dict(_operations(wsdl, elements))

    def type(self, name):
        return self.types[name]

    @functools.cached_property
    def xml_schema(self):
        """The version's XML Schema (lxml), for validating a message's Body element."""
        return etree.XMLSchema(etree.ElementTree(_standalone(self._schema_element)))

    def validator(self):
        """This thread's own XML Schema object: a validator keeps its error log between calls."""
        validators = _per_thread.__dict__.setdefault('validators', {})
        if self.version not in validators:
            validators[self.version] = etree.XMLSchema(etree.ElementTree(_standalone(self._schema_element)))
        return validators[self.version]


def _operations(wsdl, elements):
    messages = {m.get('name'): m.find(f'{{{WSDL}}}part').get('element').split(':')[-1]
                for m in wsdl.findall(f'{{{WSDL}}}message')}
    actions = {o.get('name'): o.find(f'{{{WSDL_SOAP}}}operation').get('soapAction')
               for o in wsdl.iterfind(f'{{{WSDL}}}binding/{{{WSDL}}}operation')}
    for port_operation in wsdl.iterfind(f'{{{WSDL}}}portType/{{{WSDL}}}operation'):
        name = port_operation.get('name')
        request = messages[port_operation.find(f'{{{WSDL}}}input').get('message').split(':')[-1]]
        response = messages[port_operation.find(f'{{{WSDL}}}output').get('message').split(':')[-1]]
        yield name, Operation(name, elements[request], response, elements[response], actions.get(name, name))


def _fields(node, groups, in_choice=False):
    """The element declarations under a type, groups expanded, in document order."""
    for child in node:
        tag = etree.QName(child).localname if isinstance(child.tag, str) else None
        if tag == 'element':
            yield Field(child.get('name'), _type_name(child, child.get('type')),
                        required=not in_choice and child.get('minOccurs', '1') != '0',
                        repeated=child.get('maxOccurs', '1') not in ('0', '1'))
        elif tag in ('sequence', 'choice'):
            yield from _fields(child, groups, in_choice or tag == 'choice')
        elif tag == 'group':
            yield from _fields(groups[child.get('ref').split(':')[-1]], groups, in_choice)


def _type_name(node, qualified):
    prefix, _, local = qualified.rpartition(':')
    return f'xs:{local}' if node.nsmap.get(prefix or None) == XS else local


def _standalone(schema_element):
    """The embedded xs:schema as a document of its own, keeping the namespaces it inherits."""
    return etree.fromstring(etree.tostring(schema_element))


def versions():
    """The API versions with a WSDL here, oldest first."""
    found = (_VERSION_FILE.fullmatch(path.name) for path in WSDL_DIRECTORY.iterdir())
    return sorted(match[1] for match in found if match)


@functools.cache
def schema_for(version):
    """The ApiSchema of a version, or None if no WSDL of it is here."""
    if version not in versions():
        return None
    return ApiSchema(version, WSDL_DIRECTORY / f'ec2-{version}.wsdl')


def version_of(namespace):
    """The API version a request element's namespace names, or None."""
    if namespace and namespace.startswith(NAMESPACE_PREFIX) and namespace.endswith('/'):
        return namespace[len(NAMESPACE_PREFIX):-1]
    return None
