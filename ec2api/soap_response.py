"""SOAP responses: the Query body writer's document, fitted to the version's schema, in an envelope;
and SOAP 1.1 Faults.

The body writer follows botocore's newest model, whose members come in another order and include
elements that the WSDLs of 2009-2010 do not know; `xs:sequence` fixes the order. So each element's
children are put in its type's order, and the ones the type does not declare are left out, down
the whole tree, guided by the WSDL types.
"""
from lxml import etree

from .renderer import escape

SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/'
_OPEN = (f'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">'
         '<soapenv:Body>')
_CLOSE = '</soapenv:Body></soapenv:Envelope>'
# Elements that older versions call by another name: (name in the schema, name in the body writer's).
RENAMED = {'shutdownState': 'currentState'}     # TerminateInstances before 2009-10-31
_TRUSTED = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def document(schema, soap_operation, rendered):
    """The envelope answering `soap_operation`, from the Query document `rendered` (bytes)."""
    root = etree.fromstring(rendered, _TRUSTED)   # our own output, but listings may be large
    fit(root, schema.type(soap_operation.response_type), schema)
    return (_OPEN + etree.tostring(root, encoding='unicode') + _CLOSE).encode('utf-8')


def fit(element, complex_type, schema):
    """Order `element`'s children as its type's sequence does and drop those it does not declare."""
    kept = []
    for index, child in enumerate(element):
        entry = complex_type.by_name.get(_schema_name(child, complex_type)) if isinstance(child.tag, str) else None
        if entry is None:
            continue
        position, field = entry
        if not field.is_simple:
            fit(child, schema.type(field.type), schema)
        kept.append((position, index, child))
    returned = _missing_return(element, complex_type)
    if returned is not None:
        kept.append(returned)
    kept.sort(key=lambda triple: triple[:2])
    element[:] = [child for _, _, child in kept]


def _schema_name(child, complex_type):
    name = etree.QName(child).localname
    for old, new in RENAMED.items():
        if name == new and old in complex_type.by_name and new not in complex_type.by_name:
            child.tag = f'{{{etree.QName(child).namespace}}}{old}'
            return old
    return name


def _missing_return(element, complex_type):
    """The (position, index, element) of a `return` the version requires and the body writer had no
    member for: `true`, as EC2 answers every action that succeeded with nothing more to say."""
    entry = complex_type.by_name.get('return')
    if entry is None or not entry[1].required or element.find('{*}return') is not None:
        return None
    returned = etree.Element(f'{{{etree.QName(element).namespace}}}return')
    returned.text = 'true'
    return entry[0], -1, returned


def fault(error, request_id):
    """A SOAP 1.1 Fault: `Client.<Code>`, or `Server.<Code>` for the cloud's own failures."""
    side = 'Server' if error.status >= 500 and error.code != 'RequestLimitExceeded' else 'Client'
    return (f'{_OPEN}<soapenv:Fault><faultcode>soapenv:{side}.{escape(error.code)}</faultcode>'
            f'<faultstring>{escape(error.message)}</faultstring>'
            f'<detail><RequestID>{escape(request_id)}</RequestID></detail>'
            f'</soapenv:Fault>{_CLOSE}').encode('utf-8')
