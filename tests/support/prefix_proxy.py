"""A reverse proxy on loopback that publishes a live server under a path and strips the path before
passing requests on, as nginx does with
`location /cloud/ { proxy_pass http://127.0.0.1:8773/; proxy_set_header Host $http_host; }`."""
import contextlib
import http.client
import http.server
import threading

from tests.support.server import free_port, simulated_cloud

# Headers of one connection, not of the request (RFC 9110, 7.6.1).
HOP_BY_HOP = {'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'}


class PrefixProxy:
    def __init__(self, target_port, prefix):
        self.target_port = target_port
        self.prefix = prefix
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}{prefix}'
        self.forwarded = []            # (method, path as passed on)
        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def forward(self):
                if not self.path.startswith(proxy.prefix + '/'):
                    self.send_error(404)
                    return
                path = self.path[len(proxy.prefix):]
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection('127.0.0.1', proxy.target_port, timeout=120)
                try:
                    upstream.request(self.command, path, body=body, headers=headers)   # keeps the client's Host
                    reply = upstream.getresponse()
                    content = reply.read()
                finally:
                    upstream.close()
                proxy.forwarded.append((self.command, path))
                self.send_response(reply.status, reply.reason)
                for name, value in reply.getheaders():
                    if name.lower() not in HOP_BY_HOP and name.lower() != 'content-length':
                        self.send_header(name, value)
                self.send_header('Content-Length', str(len(content)))
                self.end_headers()
                if self.command != 'HEAD':
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = forward

        return Handler


@contextlib.contextmanager
def cloud_behind_proxy(home, users, prefix):
    """(live server, proxy): a cloud told its [server] path_prefix, published under it by a proxy."""
    live = simulated_cloud(home, users, start=False, extra_env={'RESERVOIR_SERVER_PATH_PREFIX': prefix})
    live.start()
    proxy = PrefixProxy(live.port, prefix).start()
    try:
        yield live, proxy
    finally:
        proxy.stop()
        live.stop()
