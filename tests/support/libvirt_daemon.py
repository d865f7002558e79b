"""A second (third…) real libvirt host on this machine, for tests: a `libvirtd` of its own.

Each daemon runs in a private mount namespace where its own directories stand in for libvirt's
(/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), with its own
`host_uuid`, so two daemons are two hosts to libvirt (migration between them is allowed) and neither
touches the machine's own libvirt state. It listens on a UNIX socket under its directory, reached
as `qemu+unix:///system?socket=…`. Given a network namespace, it runs there, so its guests' taps
join the bridges of a server running in the same namespace. QEMU runs as root and writes consoles to
files (no virtlogd).
"""
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

MOUNTED = ('etc', 'run', 'lib', 'log', 'cache')
TARGETS = {'etc': '/etc/libvirt', 'run': '/run/libvirt', 'lib': '/var/lib/libvirt', 'log': '/var/log/libvirt',
           'cache': '/var/cache/libvirt'}


class LibvirtDaemon:
    def __init__(self, directory, netns=None):
        self.directory = Path(directory)
        self.netns = netns
        self.host_uuid = str(uuid.uuid4())
        self.process = None

    @property
    def socket(self):
        return self.directory / 'run' / 'libvirt-sock'

    @property
    def uri(self):
        return f'qemu+unix:///system?socket={self.socket}'

    def start(self, timeout=60):
        for name in MOUNTED:
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        (self.directory / 'etc' / 'libvirtd.conf').write_text(
            f'host_uuid = "{self.host_uuid}"\nunix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\n')
        (self.directory / 'etc' / 'qemu.conf').write_text('user = "+0"\ngroup = "+0"\nstdio_handler = "file"\n')
        binds = '; '.join(f'mkdir -p {TARGETS[name]} && mount --bind {self.directory / name} {TARGETS[name]}'
                          for name in MOUNTED)
        command = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                   f'{binds} && exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd.pid']
        if self.netns:
            command = ['ip', 'netns', 'exec', self.netns, *command]
        self.log = open(self.directory / 'libvirtd.log', 'ab')
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'libvirtd exited: {(self.directory / "libvirtd.log").read_text()[-2000:]}')
            if self.socket.exists() and self._answers():
                return self
            time.sleep(0.2)
        raise RuntimeError('libvirtd did not start listening')

    def _answers(self):
        return subprocess.run(['virsh', '-c', self.uri, 'uri'], capture_output=True, timeout=10).returncode == 0

    def domains(self):
        """Names of every domain the daemon knows, running or not."""
        listed = subprocess.run(['virsh', '-c', self.uri, 'list', '--all', '--name'], capture_output=True,
                                text=True, timeout=30)
        return {line.strip() for line in listed.stdout.splitlines() if line.strip()}

    def stop(self):
        """Destroy its domains, then end the daemon."""
        if self.process is None or self.process.poll() is not None:
            return
        for name in self.domains():
            subprocess.run(['virsh', '-c', self.uri, 'destroy', name], capture_output=True, timeout=30)
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        self.log.close()
