"""The EC2 Query protocol: parameters from the query string and a form body, signed with SigV4 or
SigV2; answers are EC2 XML documents, errors `Response/Errors/Error` without a namespace."""
import urllib.parse

from flask import Response

from . import auth, identity
from .errors import EC2Error
from .protocol import Call
from .renderer import render_error, render_response

# What a SigV4 signature may be scoped to on this endpoint: EC2, and STS and IAM for who-am-i.
SERVICES = (auth.SERVICE, *identity.SERVICES)


class QueryProtocol:
    name = 'query'

    def __init__(self, authenticator):
        self.authenticator = authenticator

    def accepts(self, request):
        return True       # the default: whatever is not another protocol's is a Query request

    def read(self, request, body):
        params = merged_params(request.query_string, body)
        call = Call(action=params.get('Action'), params=params, version=params.get('Version'))
        call.principal = self.authenticator.signed(signed_request(request, body, params), SERVICES)
        return call

    def respond(self, call, model, result, request_id):
        return xml_response(render_response(model, result.body, request_id, call.version, result.extra_xml),
                            200, request_id)

    def fail(self, error, request_id, call=None):
        return error_response(error, request_id)


def signed_request(request, body, params):
    """What the signature verifier needs of a Flask request."""
    return auth.SignedRequest(
        method=request.method,
        path=auth.request_path(request.environ),
        query_string=request.query_string.decode('latin-1'),
        headers=request.headers,
        body=body,
        params=params,
    )


def merged_params(query_string, body):
    """Query string and form body as one dict; the body wins on a clash, as AWS merges them."""
    params = {}
    for raw in (query_string, body):
        if not raw:
            continue
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError:
            raise EC2Error('InvalidParameterValue', 'The request is not valid UTF-8') from None
        params.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return params


def xml_response(body, status, request_id):
    response = Response(body, status=status, content_type='text/xml;charset=UTF-8')
    response.headers['x-amzn-RequestId'] = request_id
    return response


def error_response(error, request_id):
    return xml_response(render_error(error.code, error.message, request_id), error.status, request_id)
