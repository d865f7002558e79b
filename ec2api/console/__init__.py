"""The web console: static pages under /console/ that call the EC2 Query API, signed in the browser.

Nothing here accepts a state change or a credential: the page signs its requests with the user's
key (SigV4, Web Crypto) and sends them to the same endpoint as every other client.
"""
from pathlib import Path

from flask import Blueprint, jsonify, redirect, send_from_directory

STATIC = Path(__file__).parent / 'static'
# The page needs no inline script or style, so none is allowed; nor may another site frame it.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
# Where the API is, relative to /console/: a path prefix in front of the server is kept.
API_PATH = '../'


def register(app, cloud):
    console = Blueprint('console', __name__)

    @console.get('/console')
    def bare():
        return redirect('console/', 301)       # relative, so it works behind a path prefix

    @console.get('/console/')
    def index():
        return _static('index.html')

    @console.get('/console/config.json')
    def config():
        # Unauthenticated, so it states only what every client is told anyway.
        return jsonify(region=cloud.config.region, api=API_PATH)

    @console.get('/console/<path:name>')
    def static(name):
        return _static(name)

    console.after_request(_secure_headers)
    app.register_blueprint(console)


def _static(name):
    response = send_from_directory(STATIC, name, max_age=0)
    response.headers['Cache-Control'] = 'no-cache'
    return response


def _secure_headers(response):
    response.headers['Content-Security-Policy'] = CONTENT_SECURITY_POLICY
    response.headers['X-Content-Type-Options'] = 'nosniff'
    response.headers['Referrer-Policy'] = 'no-referrer'
    response.headers['X-Frame-Options'] = 'DENY'
    return response
