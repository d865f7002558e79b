"""The Flask application: one view that picks the request's protocol, then authenticates, dispatches
and answers in that protocol."""
import logging
import uuid

from flask import Flask, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend.errors import BackendError

from . import auth, console, identity, upload
from .authentication import Authenticator
from .dispatch import Dispatcher
from .errors import EC2Error
from .query import QueryProtocol, error_response, xml_response
from .soap import SoapProtocol

log = logging.getLogger(__name__)

ROUTES = ('/', '/services/Cloud', '/services/Eucalyptus', '/services/Cloud/', '/services/Eucalyptus/')
MAX_BODY_BYTES = 1024 * 1024


def create_app(cloud):
    app = Flask('reservoir')
    app.config['MAX_CONTENT_LENGTH'] = MAX_BODY_BYTES
    # `//services//Cloud` would otherwise earn an HTML redirect page: every answer is EC2 XML.
    app.url_map.merge_slashes = False
    authenticator = Authenticator(cloud)
    endpoint = Endpoint(cloud, authenticator)
    for route in ROUTES:
        app.add_url_rule(route, endpoint=route, view_func=endpoint.handle, methods=['GET', 'POST'])
    upload.register(app, cloud, authenticator)       # users' disk images, streamed: PUT /upload/<name>
    console.register(app, cloud)                     # the web console's static pages: GET /console/
    app.register_error_handler(404, endpoint.not_found)
    app.register_error_handler(405, endpoint.not_found)
    app.register_error_handler(413, endpoint.too_large)
    app.register_error_handler(HTTPException, endpoint.http_error)
    return app


class Endpoint:
    """Turns one HTTP request into one back-end call and one response, in the request's protocol."""

    def __init__(self, cloud, authenticator):
        self.cloud = cloud
        self.dispatcher = Dispatcher(cloud)
        self.query = QueryProtocol(authenticator)
        self.protocols = (SoapProtocol(authenticator), self.query)     # the first that accepts a request speaks it

    def handle(self):
        request_id = str(uuid.uuid4())
        protocol = next(p for p in self.protocols if p.accepts(request))
        call = None
        try:
            body = _read_body()
            call = protocol.read(request, body)
            if call.principal.service != auth.SERVICE:
                return self._identity(call, request_id)
            model, result = self.dispatcher.call(call.action, call.params, call.principal, version=call.version,
                                                 request_id=request_id, host=request.host)
            return protocol.respond(call, model, result, request_id)
        except EC2Error as error:
            return protocol.fail(error, request_id, call)
        except BackendError as error:
            return protocol.fail(EC2Error(error.code, error.message), request_id, call)
        except HTTPException as error:   # the request itself was refused (too large, unreadable)
            if protocol is self.query:
                return self.http_error(error)
            return protocol.fail(_as_ec2_error(error), request_id, call)
        except Exception:  # a bug must still answer as EC2 does, never as a traceback page
            log.exception('request %s failed', request_id)
            return protocol.fail(EC2Error('InternalError', 'An internal error has occurred'), request_id, call)

    def _identity(self, call, request_id):
        """STS and IAM's who-am-i, answered in their own protocol's documents."""
        user = self.cloud.users.get(call.principal.user_name)
        status, body = identity.handle(call.principal.service, call.params, user, user.created_at, request_id)
        return xml_response(body, status, request_id)

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


def _as_ec2_error(error):
    if error.code == 413:
        return EC2Error('RequestEntityTooLarge', f'The request body is larger than {MAX_BODY_BYTES} bytes.', 413)
    status = error.code if error.code and 400 <= error.code < 500 else 400
    return EC2Error('InvalidRequest', error.description or 'The request is not valid.', status)


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


def _error_response(code, message, status):
    return error_response(EC2Error(code, message, status), str(uuid.uuid4()))
