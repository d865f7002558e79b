"""A Reservoir cloud with real VMs, sealed in a network namespace for the test session.

`reservoir serve` runs inside the namespace (`ip netns exec`), so the bridges it makes, its
firewall rules and its QEMU processes all live there. The tests reach its endpoint over a veth
pair into the namespace; forwarding is on inside it, so what keeps networks apart is Reservoir's
firewall, not a missing route. Everything is removed at the end: instances, server, any QEMU
process left under the state directory, the namespace.
"""
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.libvirt_daemon import LibvirtDaemon

REPO = Path(__file__).resolve().parents[2]
REGION = 'reservoir-1'
CONTEXTUALIZED = 'reservoir-context: contextualized'
BOOT_TIMEOUT = 180            # generous: TCG on two loaded cores; a bound for failing, not a measure
STATE_TIMEOUT = 120
PORT = 8773


def missing_requirement():
    """Why real VMs cannot run here, or None."""
    if os.geteuid() != 0:
        return 'real VMs need root (network namespaces, bridges, iptables)'
    for tool in ('qemu-system-x86_64', 'qemu-img', 'ip', 'iptables-restore'):
        if shutil.which(tool) is None:
            return f'{tool} is not installed'
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return 'libvirt-python is not installed'
    return None


def unused_link_local_octet():
    """A 169.254.N.0/30 for the API link that no interface here uses (parallel sessions each get one)."""
    in_use = run('ip', '-o', '-4', 'addr', 'show').stdout
    free = [octet for octet in range(1, 255) if f' 169.254.{octet}.' not in in_use]
    return random.choice(free)


def run(*command, check=True, timeout=120):
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=timeout)


class NetnsCloud:
    """The namespace, the server inside it, and a boto3 client for one user."""

    def __init__(self, local_host=True):
        self.local_host = local_host        # the embedded QEMU host; without it, hosts are added later
        tag = secrets.token_hex(3)
        self.namespace = f'rsv-vm-{tag}'
        self.home = Path(tempfile.mkdtemp(prefix='reservoir-vm-'))
        self.env = dict(os.environ, RESERVOIR_HOME=str(self.home / 'home'), RESERVOIR_COMPUTE_RATE_LIMITS='false',
                        RESERVOIR_COMPUTE_POLL_SECONDS='0.2', RESERVOIR_COMPUTE_MONITOR_SECONDS='2',
                        RESERVOIR_COMPUTE_STOP_TIMEOUT_SECONDS='15', PYTHONPATH=str(REPO))
        octet = unused_link_local_octet()
        self.outside_ip, self.inside_ip = f'169.254.{octet}.1', f'169.254.{octet}.2'
        self.veth = f'rsv-vm-{tag}'
        self.server = None

    # -- setting up ----------------------------------------------------------------------------------

    def start(self):
        # The namespace has no way out: fetch the Debian packages of the stock image (cached) first.
        run(sys.executable, str(REPO / 'images' / 'build_stock.py'), timeout=900)
        run('ip', 'netns', 'add', self.namespace)
        self.inside('ip', 'link', 'set', 'lo', 'up')
        self.inside('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
        run('ip', 'link', 'add', self.veth, 'type', 'veth', 'peer', 'name', 'api0', 'netns', self.namespace)
        run('ip', 'addr', 'add', f'{self.outside_ip}/30', 'dev', self.veth)
        run('ip', 'link', 'set', self.veth, 'up')
        self.inside('ip', 'addr', 'add', f'{self.inside_ip}/30', 'dev', 'api0')
        self.inside('ip', 'link', 'set', 'api0', 'up')
        if self.local_host:
            self.host = self.admin('host', 'add-local')
        stock = json.loads(self.admin('image', 'install-stock', '--json'))
        self.image_id = stock['machine']['image_id']
        self.user = json.loads(self.admin('user', 'create', 'tester', '--json'))
        self.other_user = json.loads(self.admin('user', 'create', 'neighbour', '--json'))
        self.other_subnet = json.loads(self.admin('net', 'create', 'other', '10.1.0.0/20', '--json'))[0]['subnet_id']
        self._serve()
        return self

    def inside(self, *command, check=True, timeout=120):
        return run('ip', 'netns', 'exec', self.namespace, *command, check=check, timeout=timeout)

    def admin(self, *arguments):
        result = subprocess.run(['ip', 'netns', 'exec', self.namespace, sys.executable, '-m', 'backend.cli',
                                 *arguments], env=self.env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise AssertionError(f'reservoir {" ".join(arguments)} failed: {result.stderr}')
        return result.stdout

    def _serve(self):
        self.log_path = self.home / 'server.log'
        with open(self.log_path, 'ab') as log:
            self.server = subprocess.Popen(
                ['ip', 'netns', 'exec', self.namespace, sys.executable, '-m', 'backend.cli', 'serve',
                 '--listen', f'{self.inside_ip}:{PORT}'],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f'the server exited:\n{self.log()}')
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex((self.inside_ip, PORT)) == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f'the server does not listen:\n{self.log()}')

    def log(self):
        try:
            return self.log_path.read_text(errors='replace')[-6000:]
        except OSError:
            return ''

    def in_vpc(self, vpc_id, *command, check=True, timeout=120):
        """Run `command` in a VPC's router, where its private addresses are reachable."""
        return run(*self.vpc_command(vpc_id, *command), check=check, timeout=timeout)

    def vpc_command(self, vpc_id, *command):
        """`command` prefixed to run in a VPC's router. The server made the router's name in its own
        mount namespace, so the name is found through the server's root."""
        from backend.networking.host_network import namespace_prefix
        name = f"{namespace_prefix(Path(self.env['RESERVOIR_HOME']).absolute())}{vpc_id}"
        return ['nsenter', f'--net=/proc/{self.server.pid}/root/run/netns/{name}', *command]

    def guest_shell(self, vpc_id, key, address, command, timeout=90):
        """Run `command` in a guest over SSH from its VPC's router (the host key is test_ssh's concern)."""
        return run(*self.vpc_command(vpc_id, *ssh_arguments(key, address), command), check=False, timeout=timeout)

    def client(self, user=None):
        import boto3
        from botocore.config import Config
        user = user or self.user
        return boto3.client('ec2', endpoint_url=f'http://{self.inside_ip}:{PORT}', region_name=REGION,
                            aws_access_key_id=user['access_key_id'],
                            aws_secret_access_key=user['secret_access_key'],
                            config=Config(retries={'max_attempts': 3}))

    # -- tearing down --------------------------------------------------------------------------------

    def close(self, ec2):
        try:
            self._terminate_all(ec2)
        finally:
            self._stop_server()
            self._kill_leftover_qemu()
            run('ip', 'netns', 'delete', self.namespace, check=False)
            run('ip', 'link', 'delete', self.veth, check=False)
            shutil.rmtree(self.home, ignore_errors=True)

    def _terminate_all(self, ec2):
        if ec2 is None or self.server is None or self.server.poll() is not None:
            return
        ids = [i['InstanceId'] for r in ec2.describe_instances()['Reservations'] for i in r['Instances']
               if i['State']['Name'] != 'terminated']
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_for_states(ec2, ids, {'terminated'})

    def kill_server(self):
        """SIGKILL the server, as a crash would; its guests keep running."""
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(30)

    def restart_server(self):
        self._serve()

    def _stop_server(self):
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(30)

    def _kill_leftover_qemu(self):
        """QEMU outlives the embedded driver's process: end those this cloud started, by pid."""
        for pid in qemu_pids(str(self.home)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def cloud_on_two_daemons(names=('left', 'right')):
    """(cloud, ec2, {name: LibvirtDaemon}): a NetnsCloud whose only hosts are two libvirt daemons of
    their own, registered as qemu+unix hosts without shared storage; all removed afterwards."""
    cloud = NetnsCloud(local_host=False)
    daemons, ec2 = [], None
    try:
        cloud.start()
        for name in names:
            daemon = LibvirtDaemon(cloud.home / f'libvirtd-{name}', netns=cloud.namespace).start()
            daemons.append(daemon)
            cloud.admin('host', 'add', daemon.uri, '--name', name, '--domain-type', 'qemu')
        ec2 = cloud.client()
        yield cloud, ec2, dict(zip(names, daemons))
    finally:
        try:
            cloud.close(ec2)
        finally:
            for daemon in daemons:
                daemon.stop()


def ssh_arguments(key, address):
    return ['ssh', '-i', str(key), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o',
            'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=20', '-o',
            'IdentitiesOnly=yes', f'root@{address}']


def launch_pingable(cloud, ec2):
    """A stock VM in a group that admits ping, running and contextualized: its description."""
    group = security_group(ec2, 'pingable', icmp_in())
    (instance,) = ec2.run_instances(ImageId=cloud.image_id, MinCount=1, MaxCount=1, InstanceType='m1.small',
                                    SecurityGroupIds=[group])['Instances']
    instance_id = instance['InstanceId']
    wait_for_states(ec2, [instance_id], {'running'})
    wait_for_console(ec2, instance_id, CONTEXTUALIZED)
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]


def security_group(ec2, name, *ingress):
    """A new group of the default VPC (named `name` and a random suffix) that lets `ingress` in."""
    group_id = ec2.create_security_group(GroupName=f'{name}-{secrets.token_hex(3)}', Description=name)['GroupId']
    if ingress:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=list(ingress))
    return group_id


def tcp_in(port, cidr='0.0.0.0/0'):
    return {'IpProtocol': 'tcp', 'FromPort': port, 'ToPort': port, 'IpRanges': [{'CidrIp': cidr}]}


def icmp_in(cidr='0.0.0.0/0', icmp_type=-1):
    return {'IpProtocol': 'icmp', 'FromPort': icmp_type, 'ToPort': -1, 'IpRanges': [{'CidrIp': cidr}]}


def qemu_pids(fragment):
    """Pids of QEMU processes whose command line mentions `fragment`."""
    pids = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if arguments and arguments[0].endswith(b'qemu-system-x86_64') and \
                any(fragment.encode() in argument for argument in arguments):
            pids.append(int(entry.name))
    return pids


def console(ec2, instance_id):
    return ec2.get_console_output(InstanceId=instance_id).get('Output') or ''


def wait_for_console(ec2, instance_id, *markers, timeout=BOOT_TIMEOUT):
    """The console once it holds every marker (each, if a marker is a (text, count) pair, that often)."""
    deadline = time.monotonic() + timeout
    text = ''
    while time.monotonic() < deadline:
        text = console(ec2, instance_id)
        if all(_holds(text, marker) for marker in markers):
            return text
        time.sleep(0.5)
    raise AssertionError(f'{instance_id}: console lacks {markers} after {timeout} s:\n{text[-3000:]}')


def _holds(text, marker):
    if isinstance(marker, tuple):
        wanted, count = marker
        return text.count(wanted) >= count
    return marker in text


def wait_for_states(ec2, ids, states, timeout=STATE_TIMEOUT):
    deadline = time.monotonic() + timeout
    found, reasons = {}, {}
    while time.monotonic() < deadline:
        instances = [i for r in ec2.describe_instances(InstanceIds=ids)['Reservations'] for i in r['Instances']]
        found = {i['InstanceId']: i['State']['Name'] for i in instances}
        reasons = {i['InstanceId']: i.get('StateReason', {}).get('Message') for i in instances}
        if set(found.values()) <= states and len(found) == len(ids):
            return found
        time.sleep(0.5)
    raise AssertionError(f'instances did not reach {states}: {found}; reasons: {reasons}')


@pytest.fixture(scope='session')
def vm_cloud():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    cloud = NetnsCloud()
    ec2 = None
    try:
        cloud.start()
        ec2 = cloud.client()
        yield cloud
    finally:
        cloud.close(ec2)


@pytest.fixture(scope='session')
def ec2(vm_cloud):
    return vm_cloud.client()
