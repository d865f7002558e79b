"""Where one request's server CPU goes: each stage of the front-end timed in this process.

Opens the cloud of a benchmark's state directory (after its server has stopped) and times, for
one pre-signed request: reading the form, verifying the signature, parsing the parameters
against the service model, the action with its back-end call, rendering the XML, and the whole
WSGI application (which adds Flask's request handling). The HTTP server's own cost is what the
server CPU per request measured over the wire adds to the last figure.
"""
import io
import os
import time
import urllib.parse

from werkzeug.test import EnvironBuilder

from backend.cloud import Cloud
from backend.config import load_config
from ec2api import auth
from ec2api.actions import RequestContext, handler_for
from ec2api.app import create_app
from ec2api.query import merged_params as _merged_params
from ec2api.parser import parse_params
from ec2api.renderer import render_response
from ec2api.service_model import operation


def stage_costs(home, endpoint, request, repeat=2000):
    """{stage: microseconds per call} for one pre-signed (path, headers, body) request."""
    environment = dict(os.environ, RESERVOIR_HOME=str(home), RESERVOIR_COMPUTE_RATE_LIMITS='false')
    with Cloud.open(load_config(environment)) as cloud:
        path, headers, body = request
        host = urllib.parse.urlsplit(endpoint).netloc
        all_headers = {**headers, 'Host': host}
        params = _merged_params(b'', body)
        signed = auth.SignedRequest(method='POST', path=path, query_string='', headers=all_headers, body=body,
                                    params=params)
        secret_for = lambda key: cloud.users.secret_for(key).secret   # noqa: E731 - as the app asks
        account = cloud.users.secret_for(auth.authenticate(signed, secret_for, region=cloud.config.region))
        model = operation(params['Action'])
        handler = handler_for(params['Action'])
        context = RequestContext(cloud=cloud, account_id=account.account_id, user_name=account.user_name,
                                 version=params['Version'], request_id='request', host=host)
        arguments = parse_params(model, params)
        result = handler(context, arguments)
        app = create_app(cloud)
        environ = EnvironBuilder(path=path, method='POST', base_url=endpoint, headers=all_headers,
                                 data=body).get_environ()
        stages = {
            'read form': lambda: _merged_params(b'', body),
            'verify signature': lambda: auth.authenticate(signed, secret_for, region=cloud.config.region),
            'parse parameters': lambda: parse_params(model, params),
            'action + back-end': lambda: handler(context, arguments),
            'render XML': lambda: render_response(model, result, 'request', params['Version'], ''),
            'whole WSGI app': lambda: _call_app(app, environ, body),
        }
        return {name: _microseconds(call, repeat) for name, call in stages.items()}


def _microseconds(call, repeat):
    call()   # warm caches
    started = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - started) / repeat * 1e6


def _call_app(app, environ, body):
    statuses = []
    request_environ = dict(environ, **{'wsgi.input': io.BytesIO(body)})
    b''.join(app(request_environ, lambda status, _headers, _exc=None: statuses.append(status)))
    if not statuses[0].startswith('200'):
        raise RuntimeError(f'the application answered {statuses[0]}')
