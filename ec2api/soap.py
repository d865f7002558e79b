"""The EC2 SOAP protocol (SOAP 1.1, document/literal) beside Query, on the same URLs.

A request is SOAP when it is a POST of `text/xml`. The Body's one element names the operation, and
its namespace `http://ec2.amazonaws.com/doc/<version>/` the API version, whose WSDL (ec2api/wsdl)
validates it; a SOAPAction header, if sent, must name the same operation, since the header is not
signed and the Body is. The sender is the owner of the X.509 certificate that signed the message
(WS-Security, see wssecurity.py). The operation's parameters are mapped onto Query parameters
(soap_request.py), dispatched like any Query request, and the answer is the Query body fitted to the
version's schema (soap_response.py). Every error is a SOAP Fault, sent with HTTP status 500 as
SOAP 1.1 over HTTP requires.
"""
from flask import Response
from lxml import etree

from . import safe_xml, soap_request, soap_response
from .errors import EC2Error
from .protocol import Call
from .renderer import render_response
from .service_model import operation
from .soap_schema import schema_for, version_of, versions

SOAP_ENV = soap_response.SOAP_ENV
CONTENT_TYPE = 'text/xml;charset=UTF-8'
_MAX_SCHEMA_ERROR = 300


class SoapProtocol:
    name = 'soap'

    def __init__(self, authenticator):
        self.authenticator = authenticator

    def accepts(self, request):
        return request.method == 'POST' and request.mimetype == 'text/xml'

    def read(self, request, body):
        envelope = safe_xml.parse(body)
        operation_element = _operation_element(envelope)
        name = etree.QName(operation_element).localname
        _check_soap_action(request.headers.get('SOAPAction'), name)
        version = version_of(etree.QName(operation_element).namespace)
        schema = schema_for(version)
        if schema is None:
            raise EC2Error('NoSuchVersion', f'The API version of the namespace {etree.QName(operation_element).namespace!r}'
                                            f' is not served over SOAP; these are: {", ".join(versions())}.')
        principal = self.authenticator.certified(envelope)
        soap_operation = schema.operations.get(name)
        if soap_operation is None:
            raise EC2Error('InvalidAction', f'The action {name} is not valid for this web service.')
        _validate(schema, operation_element)
        model = operation(name)
        params = soap_request.query_params(operation_element, schema, soap_operation,
                                           model.input_shape if model else None)
        return Call(action=name, params=params, version=version, principal=principal)

    def respond(self, call, model, result, request_id):
        schema = schema_for(call.version)
        rendered = render_response(model, result.body, request_id, call.version, result.extra_xml)
        return _response(soap_response.document(schema, schema.operations[call.action], rendered), 200, request_id)

    def fail(self, error, request_id, call=None):
        return _response(soap_response.fault(error, request_id), 500, request_id)


def _operation_element(envelope):
    if envelope.tag != f'{{{SOAP_ENV}}}Envelope':
        raise EC2Error('InvalidRequest', 'The request is not a SOAP 1.1 Envelope '
                                         f'({{{SOAP_ENV}}}Envelope).')
    bodies = envelope.findall(f'{{{SOAP_ENV}}}Body')
    if len(bodies) != 1:
        raise EC2Error('InvalidRequest', 'A SOAP Envelope must have exactly one Body.')
    operations = [child for child in bodies[0] if isinstance(child.tag, str)]
    if len(operations) != 1:
        raise EC2Error('InvalidRequest', 'The SOAP Body must hold exactly one operation element.')
    return operations[0]


def _check_soap_action(header, name):
    action = (header or '').strip().strip('"')
    if action and action != name and not action.endswith(('/' + name, '#' + name)):
        raise EC2Error('InvalidRequest', f'The SOAPAction {action[:80]!r} does not name the operation of '
                                         f'the Body, {name}.')


def _validate(schema, operation_element):
    validator = schema.validator()
    if not validator.validate(operation_element):
        error = validator.error_log.last_error
        message = error.message if error is not None else 'it does not match the schema'
        raise EC2Error('InvalidParameterValue', f'The {etree.QName(operation_element).localname} request does '
                                                f'not match the schema: {message[:_MAX_SCHEMA_ERROR]}')


def _response(body, status, request_id):
    response = Response(body, status=status, content_type=CONTENT_TYPE)
    response.headers['x-amzn-RequestId'] = request_id
    return response
