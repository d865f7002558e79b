"""A machine made of network namespaces, for tests of bridges, routers and firewalls.

The "host" is a namespace; each "guest" is a namespace with a veth into one of the host's bridges
(its host end named like the tap of a real instance, if asked) and its subnet's gateway as its
default route. Nothing leaves the namespaces.
"""
import os
import secrets
import shutil
import subprocess

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in ('ip', 'iptables-restore', 'ping')),
    reason='needs root, iproute2, iptables and ping to make network namespaces')


def sh(*command, check=True, timeout=30):
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=timeout)


def reaches(namespace_prefix, address):
    return sh(*namespace_prefix, 'ping', '-c', '1', '-W', '2', address, check=False).returncode == 0


class Lab:
    def __init__(self):
        self.tag = secrets.token_hex(3)
        self.host = f'rsvt-h-{self.tag}'
        self.namespaces = [self.host]
        self.servers = []
        sh('ip', 'netns', 'add', self.host)
        self.inside = ('ip', 'netns', 'exec', self.host)
        sh(*self.inside, 'ip', 'link', 'set', 'lo', 'up')
        sh(*self.inside, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')

    def guest(self, name, bridge, address, gateway, port=None, mac=None):
        """A guest on `bridge` with `address` (CIDR form); `port` names its link on the host."""
        namespace = f'rsvt-{name}-{self.tag}'
        sh('ip', 'netns', 'add', namespace)
        self.namespaces.append(namespace)
        port = port or f'p{name}{self.tag}'[:15]
        inner = f'g{name}{self.tag}'[:15]
        sh('ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', inner)
        sh('ip', 'link', 'set', port, 'netns', self.host)
        sh('ip', 'link', 'set', inner, 'netns', namespace)
        sh(*self.inside, 'ip', 'link', 'set', port, 'master', bridge, 'up')
        guest = ('ip', 'netns', 'exec', namespace)
        sh(*guest, 'ip', 'link', 'set', inner, 'name', 'eth0')
        if mac:
            sh(*guest, 'ip', 'link', 'set', 'eth0', 'address', mac)
        sh(*guest, 'ip', 'addr', 'add', address, 'dev', 'eth0')
        sh(*guest, 'ip', 'link', 'set', 'eth0', 'up')
        sh(*guest, 'ip', 'route', 'add', 'default', 'via', gateway)
        sh(*guest, 'ip', 'link', 'set', 'lo', 'up')
        return guest

    def serve_tcp(self, guest, port):
        """A TCP server in `guest` that answers every connection to `port` with 'hi'."""
        self.servers.append(subprocess.Popen([*guest, 'busybox', 'nc', '-ll', '-p', str(port), '-e', 'echo', 'hi'],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def close(self):
        for server in self.servers:
            server.kill()
            server.wait()
        for namespace in self.namespaces:
            sh('ip', 'netns', 'delete', namespace, check=False)


def connects(guest, address, port):
    """True when a TCP connection from `guest` to address:port gets the server's answer."""
    result = sh(*guest, 'busybox', 'nc', '-w', '2', address, str(port), check=False, timeout=10)
    return result.stdout.strip() == 'hi'
