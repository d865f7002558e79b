"""The Flask application: one view that authenticates, parses, dispatches and renders."""
import logging
import urllib.parse
import uuid

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend.errors import BackendError

from . import auth, identity, upload
from .actions import RequestContext, Result, handler_for
from .errors import EC2Error
from .parser import parse_params
from .renderer import render_error, render_response
from .service_model import operation
from .throttle import Throttle

log = logging.getLogger(__name__)

ROUTES = ('/', '/services/Cloud', '/services/Eucalyptus', '/services/Cloud/', '/services/Eucalyptus/')
MAX_BODY_BYTES = 1024 * 1024
# What a SigV4 signature may be scoped to on this endpoint: EC2, and STS and IAM for who-am-i.
SERVICES = (auth.SERVICE, *identity.SERVICES)


def create_app(cloud):
    app = Flask('reservoir')
    app.config['MAX_CONTENT_LENGTH'] = MAX_BODY_BYTES
    # `//services//Cloud` would otherwise earn an HTML redirect page: every answer is EC2 XML.
    app.url_map.merge_slashes = False
    endpoint = Endpoint(cloud)
    for route in ROUTES:
        app.add_url_rule(route, endpoint=route, view_func=endpoint.handle, methods=['GET', 'POST'])
    upload.register(app, cloud)       # users' disk images, streamed: PUT /upload/<name>
    app.register_error_handler(404, endpoint.not_found)
    app.register_error_handler(405, endpoint.not_found)
    app.register_error_handler(413, endpoint.too_large)
    app.register_error_handler(HTTPException, endpoint.http_error)
    return app


class Endpoint:
    """Turns one HTTP request into one back-end call and one EC2 response."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.throttle = Throttle.from_settings(cloud.config.compute)

    def handle(self):
        request_id = str(uuid.uuid4())
        version = None
        try:
            body = _read_body()
            params = _merged_params(request.query_string, body)
            version = params.get('Version')
            user, service = self._authenticate(params, body)
            if service != auth.SERVICE:
                return self._identity(service, params, user, request_id)
            result = self._dispatch(params, user, request_id)
            return _xml(render_response(operation(params['Action']), result.body, request_id,
                                        version, result.extra_xml), 200, request_id)
        except EC2Error as error:
            return _error(error, request_id)
        except BackendError as error:
            return _error(EC2Error(error.code, error.message), request_id)
        except HTTPException as error:   # the request itself was refused (too large, unreadable)
            return self.http_error(error)
        except Exception:  # a bug must still answer as EC2 does, never as a traceback page
            log.exception('request %s failed', request_id)
            return _error(EC2Error('InternalError', 'An internal error has occurred'), request_id)

    def _authenticate(self, params, body):
        signed = auth.SignedRequest(
            method=request.method,
            path=auth.request_path(request.environ),
            query_string=request.query_string.decode('latin-1'),
            headers=request.headers,
            body=body,
            params=params,
        )
        verified = auth.verify(signed, self._secret_for, region=self.cloud.config.region, services=SERVICES)
        return self.cloud.users.secret_for(verified.access_key), verified.service

    def _identity(self, service, params, credential, request_id):
        """STS and IAM's who-am-i, answered in their own protocol's documents."""
        user = self.cloud.users.get(credential.user_name)
        status, body = identity.handle(service, params, user, user.created_at, request_id)
        return _xml(body, status, request_id)

    def _secret_for(self, access_key_id):
        credential = self.cloud.users.secret_for(access_key_id)
        return credential.secret if credential else None

    def _dispatch(self, params, user, request_id):
        action_name = params.get('Action')
        if not action_name:
            raise EC2Error('MissingAction', 'The request must contain the parameter Action')
        model = operation(action_name)
        if model is None:
            raise EC2Error('InvalidAction', f'The action {action_name} is not valid for this web service.')
        handler = handler_for(action_name)
        if handler is None:
            raise EC2Error('UnsupportedOperation', f'The action {action_name} is not supported by this cloud.')
        if self.throttle is not None:
            self.throttle.check(user.account_id, action_name)
        arguments = parse_params(model, params)
        if arguments.get('DryRun'):
            raise EC2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.')
        context = RequestContext(cloud=self.cloud, account_id=user.account_id, user_name=user.user_name,
                                 version=params.get('Version', ''),
                                 request_id=request_id, host=request.host)
        result = handler(context, arguments)
        return result if isinstance(result, Result) else Result(result or {})

    def not_found(self, _error):
        return _error_response('InvalidAction', 'No such resource or method.', 404)

    def too_large(self, _error):
        return _error_response('RequestEntityTooLarge',
                               f'The request body is larger than {MAX_BODY_BYTES} bytes.', 413)

    def http_error(self, error):
        """Any other refusal of the HTTP layer, as an EC2 error document with its 4xx status."""
        if error.code == 413:
            return self.too_large(error)
        if error.code in (404, 405):
            return self.not_found(error)
        status = error.code if error.code and 400 <= error.code < 500 else 400
        return _error_response('InvalidRequest', error.description or 'The request is not valid.', status)


def _read_body():
    """The whole body, at most MAX_BODY_BYTES: with or without Content-Length (chunked), a body over
    the limit is refused, never cut short."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    stream = request.environ.get('wsgi.input')
    if stream is None or length == 0 or (length is None and request.method == 'GET'):
        return b''
    wanted = length if length is not None else MAX_BODY_BYTES + 1
    pieces, received = [], 0
    while received < wanted:
        piece = stream.read(wanted - received)
        if not piece:
            break
        pieces.append(piece)
        received += len(piece)
    if received > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    return b''.join(pieces)


def _merged_params(query_string, body):
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


def _xml(body, status, request_id):
    response = Response(body, status=status, content_type='text/xml;charset=UTF-8')
    response.headers['x-amzn-RequestId'] = request_id
    return response


def _error(error, request_id):
    return _xml(render_error(error.code, error.message, request_id), error.status, request_id)


def _error_response(code, message, status):
    return _error(EC2Error(code, message, status), str(uuid.uuid4()))
