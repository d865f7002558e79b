"""The machine Reservoir runs on as a host: libvirt's embedded QEMU driver, no daemon.

`qemu:///embed?root=<state dir>/qemu` runs QEMU from inside the process that opens it (the
server's worker), so this module only prepares what that open needs and registers the host:

- `<root>/etc/qemu.conf` so QEMU runs as root and writes its stdio to files (no virtlogd);
- the `kvm` and `libvirt-qemu` accounts libvirt looks up when it starts;
- the domain type: KVM only if a guest really boots under it. Some machines expose a `/dev/kvm`
  that opens and creates VMs but cannot run a stock kernel (a software-only KVM), while libvirt's
  capabilities still advertise `kvm`; so the stock kernel is booted briefly and watched.

Nothing here opens the embed URI: only one process may own its root, and that is the worker's.
"""
import dataclasses
import grp
import os
import pwd
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from . import stock_image
from .errors import Conflict
from .models import Host as HostRow

HOST_NAME = 'local'
QEMU_CONF = '''# Written by Reservoir for its embedded QEMU driver.
user = "+0"
group = "+0"
stdio_handler = "file"
# No ownership xattrs on disk files: backing images are shared by many instances.
remember_owner = 0
'''
KVM_DEVICE = Path('/dev/kvm')
# The kernel prints this once it has initialised and hands over to the initramfs.
PROBE_MARKER = b'Run /init as init process'
PROBE_SECONDS = 10.0          # a real KVM gets there in about a second
PROBE_MEMORY_MIB = 128
# vCPUs offered per core: guests mostly idle, so a few share a core (OpenStack's initial default).
CPU_ALLOCATION_RATIO = 4


@dataclasses.dataclass(frozen=True)
class Probe:
    domain_type: str
    reason: str


def embed_root(home):
    return Path(home) / 'qemu'


def embed_uri(home):
    return f'qemu:///embed?root={embed_root(home)}'


def prepare_qemu_root(home):
    """Write the embedded driver's qemu.conf (only when it differs, so running domains are untouched)."""
    conf = embed_root(home) / 'etc' / 'qemu.conf'
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.exists() or conf.read_text() != QEMU_CONF:
        conf.write_text(QEMU_CONF)
    return conf


def ensure_qemu_accounts():
    """libvirt's QEMU driver refuses to start without the libvirt-qemu user and the kvm group."""
    if os.geteuid() != 0:
        return
    for group in ('kvm', 'libvirt-qemu'):
        if not _group_exists(group):
            subprocess.run(['groupadd', '-r', group], check=True, capture_output=True)
    try:
        pwd.getpwnam('libvirt-qemu')
    except KeyError:
        subprocess.run(['useradd', '-r', '-g', 'libvirt-qemu', '-G', 'kvm', '-d', '/var/lib/libvirt',
                        '-s', '/usr/sbin/nologin', 'libvirt-qemu'], check=True, capture_output=True)


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def probe_domain_type():
    """'kvm' if the stock kernel boots under KVM here, else 'qemu' (TCG), with the reason."""
    if not KVM_DEVICE.exists():
        return Probe('qemu', f'{KVM_DEVICE} does not exist')
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return Probe('qemu', f'{KVM_DEVICE} is not accessible')
    files = stock_image.build()
    started = time.monotonic()
    booted = _boots_under_kvm(files.kernel, files.initrd)
    seconds = time.monotonic() - started
    if booted:
        return Probe('kvm', f'the stock kernel booted under KVM in {seconds:.1f} s')
    return Probe('qemu', f'the stock kernel did not boot under KVM within {PROBE_SECONDS:.0f} s')


def _boots_under_kvm(kernel, initrd):
    """Boot the kernel with KVM, no disk and no network, until it reaches init or time runs out."""
    with tempfile.TemporaryDirectory(prefix='reservoir-kvm-probe-') as scratch:
        console = Path(scratch) / 'console.log'
        command = ['qemu-system-x86_64', '-accel', 'kvm', '-machine', 'pc', '-m', str(PROBE_MEMORY_MIB),
                   '-display', 'none', '-nodefaults', '-no-reboot', '-nic', 'none',
                   '-serial', f'file:{console}', '-kernel', str(kernel), '-initrd', str(initrd),
                   '-append', 'console=ttyS0 panic=-1 root=/dev/null']
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + PROBE_SECONDS
            while time.monotonic() < deadline and process.poll() is None:
                if console.exists() and PROBE_MARKER in console.read_bytes():
                    return True
                time.sleep(0.1)
            return console.exists() and PROBE_MARKER in console.read_bytes()
        finally:
            process.kill()
            process.wait()


def machine_capacity():
    """(vCPUs to offer, memory MiB) of this machine."""
    with open('/proc/meminfo', encoding='ascii') as meminfo:
        for line in meminfo:
            if line.startswith('MemTotal:'):
                memory_mib = int(line.split()[1]) // 1024
                break
    return (os.cpu_count() or 1) * CPU_ALLOCATION_RATIO, memory_mib


def add_local_host(cloud, domain_type='auto', cpus=None, memory_mib=None):
    """Prepare this machine and register it as host `local`; returns (host, probe).

    Capacity is the machine's unless given. Idempotent: run again, it keeps the registration and
    updates the capacity; the domain type found by an earlier probe is kept unless one is chosen.
    """
    home = cloud.config.home
    prepare_qemu_root(home)
    ensure_qemu_accounts()
    uri = embed_uri(home)
    registered = _registered_domain_type(cloud, uri)
    if domain_type != 'auto':
        probe = Probe(domain_type, 'chosen')
    elif registered is not None:
        probe = Probe(registered, 'kept from the host registration')
    else:
        probe = probe_domain_type()
    machine_cpus, machine_memory_mib = machine_capacity()
    cpus, memory_mib = cpus or machine_cpus, memory_mib or machine_memory_mib
    with cloud.db.write() as session:
        row = session.scalar(select(HostRow).where(HostRow.name == HOST_NAME))
        if row is not None:
            row.domain_type, row.cpus, row.memory_mib = probe.domain_type, cpus, memory_mib
    if row is None:
        cloud.hosts.add(uri, name=HOST_NAME, cpus=cpus, memory_mib=memory_mib, domain_type=probe.domain_type)
    return cloud.hosts.get(HOST_NAME), probe


def _registered_domain_type(cloud, uri):
    """The domain type of host `local` if it is registered (at this URI), else None."""
    with cloud.db.read() as session:
        row = session.scalar(select(HostRow).where(HostRow.name == HOST_NAME))
        if row is None:
            return None
        if row.uri != uri:
            raise Conflict('HostExists', f"A host named '{HOST_NAME}' is registered with {row.uri}")
        return row.domain_type
