"""Users' images as their owners live them: `reservoir image upload` against a live server (with a
progress bar, resuming cut transfers), boto3 for everything else, simulated hosts to launch on."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

import botocore.exceptions
import pytest

from backend import upload_client
from tests.support.server import REGION, LiveServer

pytestmark = pytest.mark.skipif(subprocess.run(['which', 'qemu-img'], capture_output=True).returncode,
                                reason='needs qemu-img')

WAIT = {'Delay': 1, 'MaxAttempts': 60}
MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path, request):
    extra_env = getattr(request, 'param', None) or {}
    live = LiveServer(home=tmp_path / 'home', extra_env=extra_env)
    for name in ('alice', 'bob'):
        live.create_user(name)
    live.admin('host', 'add', '--simulated', '--count', '1', '--cpus', '4', '--memory', '4096')
    live.start()
    yield live
    live.stop()


@pytest.fixture
def disk(tmp_path):
    """A qcow2 disk of 8 MiB of data, so that an upload takes more than one chunk."""
    path = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '64M'], check=True)
    subprocess.run(['qemu-io', '-c', 'write -P 0x5a 0 8M', str(path)], check=True, capture_output=True)
    return path


def user_env(server, user, tmp_path, **extra):
    """The environment of a user's shell: their keys, and no stray AWS configuration."""
    credentials = server.users[user]
    env = {key: value for key, value in os.environ.items() if not key.startswith('AWS_')}
    env.update(AWS_ACCESS_KEY_ID=credentials['access_key_id'], AWS_SECRET_ACCESS_KEY=credentials['secret_access_key'],
               AWS_CONFIG_FILE=str(tmp_path / 'no-config'), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / 'no-credentials'),
               AWS_DEFAULT_REGION=REGION)
    env.update(extra)
    return env


def upload(env, path, name, endpoint, *options):
    return subprocess.run([sys.executable, '-m', 'backend.cli', 'image', 'upload', str(path), '--name', name,
                           '--endpoint', endpoint, *options], env=env, capture_output=True, text=True, timeout=300)


def upload_json(env, path, name, endpoint, *options):
    result = upload(env, path, name, endpoint, '--json', *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def error_code(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**kwargs)
    return raised.value.response['Error']['Code']


def launch(ec2, image_id):
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)['Instances'][0]['InstanceId']
    ec2.get_waiter('instance_running').wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    return instance_id


def state_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]['State']['Name']


def admin_listing(server):
    return json.loads(server.admin('image', 'list', '--json'))


def admin_image(server, image_id):
    (image,) = [image for image in admin_listing(server)['images'] if image['image_id'] == image_id]
    return image


def wait_until(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f'{what} did not happen')


def test_alice_uploads_launches_and_shares_and_deregistering_keeps_instances_running(server, disk, tmp_path):
    alice, bob = server.client('alice'), server.client('bob')
    alice_account, bob_account = server.users['alice']['account_id'], server.users['bob']['account_id']

    uploaded, progress = upload_json(user_env(server, 'alice', tmp_path), disk, 'alice disk', server.endpoint)
    image_id = uploaded['image_id']
    assert '[' + '#' * 30 + '] 100%' in progress and '0%' in progress      # the bar, from empty to full
    assert uploaded['total_bytes'] == disk.stat().st_size
    (image,) = alice.describe_images(Owners=['self'])['Images']
    assert (image['ImageId'], image['State'], image['Public'], image['OwnerId']) == (
        image_id, 'available', False, alice_account)
    mine = launch(alice, image_id)

    assert image_id not in {image['ImageId'] for image in bob.describe_images()['Images']}
    assert error_code(bob.describe_images, ImageIds=[image_id]) == 'InvalidAMIID.NotFound'
    assert error_code(bob.run_instances, ImageId=image_id, MinCount=1, MaxCount=1) == 'InvalidAMIID.NotFound'

    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'UserId': bob_account}]})
    theirs = launch(bob, image_id)
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Remove': [{'UserId': bob_account}]})
    assert error_code(bob.run_instances, ImageId=image_id, MinCount=1, MaxCount=1) == 'InvalidAMIID.NotFound'
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={'Add': [{'Group': 'all'}]})
    assert bob.describe_images(ImageIds=[image_id])['Images'][0]['Public'] is True

    alice.deregister_image(ImageId=image_id)
    for ec2 in (alice, bob):
        assert error_code(ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1) == 'InvalidAMIID.NotFound'
        assert error_code(ec2.describe_images, ImageIds=[image_id]) == 'InvalidAMIID.NotFound'
    assert (state_of(alice, mine), state_of(bob, theirs)) == ('running', 'running')
    listed = admin_image(server, image_id)
    assert (listed['state'], listed['instances'], listed['reclaimed_at']) == ('deregistered', 2, None)
    assert os.path.exists(listed['path'])

    alice.terminate_instances(InstanceIds=[mine])
    alice.get_waiter('instance_terminated').wait(InstanceIds=[mine], WaiterConfig=WAIT)
    assert os.path.exists(listed['path'])                    # Bob's instance still reads it
    bob.terminate_instances(InstanceIds=[theirs])
    bob.get_waiter('instance_terminated').wait(InstanceIds=[theirs], WaiterConfig=WAIT)
    wait_until(lambda: admin_image(server, image_id)['reclaimed_at'] is not None, 'reclaiming the image file')
    assert not os.path.exists(listed['path'])
    accounts = {account['user']: account for account in admin_listing(server)['accounts']}
    assert accounts['alice']['used_bytes'] == 0 and accounts['alice']['quota_bytes'] > 0


def test_a_junk_file_is_refused_with_a_clear_error_and_leaves_nothing(server, tmp_path):
    junk = tmp_path / 'notes.txt'
    junk.write_text('these are my notes, not a disk image\n' * 2000)
    result = upload(user_env(server, 'alice', tmp_path), junk, 'notes', server.endpoint)
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "reservoir: error: InvalidImage.Format: 'notes' is not a disk image: it is neither qcow2 nor a raw "
        "disk (a raw disk is a whole number of 512-byte sectors)")
    listing = admin_listing(server)
    assert (listing['images'], listing['uploads']) == ([], [])
    assert [path.name for path in (server.home / 'uploads').iterdir()] == []


def test_a_lying_format_is_refused(server, disk, tmp_path):
    result = upload(user_env(server, 'alice', tmp_path), disk, 'liar', server.endpoint, '--format', 'raw')
    assert result.returncode == 1
    assert 'declared raw but is a qcow2 image' in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.parametrize('server', [{'RESERVOIR_IMAGES_ACCOUNT_QUOTA': '12M'}], indirect=True)
def test_the_quota_is_enforced_with_a_clear_error(server, disk, tmp_path):
    env = user_env(server, 'alice', tmp_path)
    upload_json(env, disk, 'first', server.endpoint)
    result = upload(env, disk, 'second', server.endpoint)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'ResourceLimitExceeded: Image storage quota exceeded' in result.stderr
    assert 'of its 12.0 MiB' in result.stderr
    assert [upload['name'] for upload in admin_listing(server)['uploads']] == []


def test_credentials_come_from_a_profile_as_for_awscli(server, disk, tmp_path):
    credentials = server.users['bob']
    profiles = tmp_path / 'credentials'
    profiles.write_text(f"[work]\naws_access_key_id = {credentials['access_key_id']}\n"
                        f"aws_secret_access_key = {credentials['secret_access_key']}\n")
    env = user_env(server, 'alice', tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(profiles))
    for key in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'):
        env.pop(key)
    uploaded, _ = upload_json(env, disk, 'from a profile', server.endpoint, '--profile', 'work')
    (image,) = server.client('bob').describe_images(ImageIds=[uploaded['image_id']])['Images']
    assert image['OwnerId'] == credentials['account_id']
    uploaded, _ = upload_json(dict(env, AWS_PROFILE='work'), disk, 'from AWS_PROFILE', server.endpoint)
    assert uploaded['image_id'].startswith('ami-')
    result = upload(env, disk, 'nobody', server.endpoint)
    assert result.returncode == 1 and 'no AWS credentials found' in result.stderr
    result = upload(env, disk, 'nobody', server.endpoint, '--profile', 'missing')
    assert result.returncode == 1 and 'missing' in result.stderr and 'Traceback' not in result.stderr


def test_the_region_signed_for_must_be_the_clouds(server, disk, tmp_path):
    env = user_env(server, 'alice', tmp_path)
    env.pop('AWS_DEFAULT_REGION')
    result = upload(env, disk, 'no region', server.endpoint)
    assert result.returncode == 1 and 'no region' in result.stderr and 'Traceback' not in result.stderr
    result = upload(env, disk, 'other region', server.endpoint, '--region', 'us-east-1')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert "scoped to a valid region, not 'us-east-1'" in result.stderr
    uploaded, _ = upload_json(env, disk, 'right region', server.endpoint, '--region', REGION)
    assert uploaded['image_id'].startswith('ami-')


def test_a_cut_transfer_is_resumed_where_it_stopped(server, disk, tmp_path):
    with CuttingProxy(server.port, cut_after=3 * MIB) as proxy:
        uploaded, _ = upload_json(user_env(server, 'alice', tmp_path), disk, 'cut once', proxy.endpoint)
    puts = [head for head in proxy.requests if head.startswith('PUT')]
    resumed = [head for head in puts if 'Content-Range: bytes 0-' not in head and '*/' not in head]
    assert len(resumed) == 1, puts                 # one retry, from where the cut left it
    offset = int(resumed[0].split('Content-Range: bytes ')[1].split('-')[0])
    assert 0 < offset <= 3 * MIB
    image = admin_image(server, uploaded['image_id'])
    assert open(image['path'], 'rb').read() == disk.read_bytes()


def test_an_abandoned_upload_is_resumed_by_running_the_command_again(server, disk, tmp_path):
    env = user_env(server, 'alice', tmp_path)
    with CuttingProxy(server.port, cut_after=3 * MIB, stall=True) as proxy:
        first = subprocess.Popen([sys.executable, '-m', 'backend.cli', 'image', 'upload', str(disk), '--name',
                                  'twice', '--endpoint', proxy.endpoint, '--json'], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proxy.stalled.wait(60)
        first.kill()                                # the user gives up: Ctrl-C, a closed laptop
        first.communicate()
    ec2 = server.client('alice')
    assert ec2.describe_images(Owners=['self'])['Images'] == []
    wait_until(lambda: _received(server, 'twice') > 0, 'the server keeping what arrived')
    arrived = _received(server, 'twice')
    uploaded, _ = upload_json(env, disk, 'twice', server.endpoint)
    assert uploaded['resumed_from'] == arrived and 0 < arrived < disk.stat().st_size
    assert uploaded['sent_bytes'] == disk.stat().st_size - arrived
    image = admin_image(server, uploaded['image_id'])
    assert open(image['path'], 'rb').read() == disk.read_bytes()


def test_an_unfinished_upload_of_other_content_is_replaced_only_when_asked(server, disk, tmp_path):
    env = user_env(server, 'alice', tmp_path)
    with CuttingProxy(server.port, cut_after=3 * MIB) as proxy, pytest.MonkeyPatch.context() as patch:
        for key in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE',
                    'AWS_DEFAULT_REGION'):
            patch.setenv(key, env[key])
        target = upload_client.open_target(proxy.endpoint)     # keys from the environment, as awscli
        with pytest.raises(upload_client.UploadFailed, match='interrupted .* run the same command again'):
            upload_client.upload(target, disk, 'shared name', attempts=1)
    wait_until(lambda: _received(server, 'shared name') > 0, 'the server keeping what arrived')
    other = tmp_path / 'other.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(other), '16M'], check=True)
    result = upload(env, other, 'shared name', server.endpoint)
    assert result.returncode == 1 and 'with other content is on the server' in result.stderr
    uploaded, _ = upload_json(env, other, 'shared name', server.endpoint, '--replace')
    assert (uploaded['resumed_from'], uploaded['sent_bytes']) == (0, other.stat().st_size)


def _received(server, name):
    uploads = {upload['name']: upload for upload in admin_listing(server)['uploads']}
    return uploads[name]['received_bytes'] if name in uploads else 0


class CuttingProxy:
    """A TCP proxy to the server that cuts the first connection carrying more than `cut_after`
    bytes from the client (the upload's data), as a dropped network would; with `stall`, it stops
    forwarding instead, until it is closed. It records each request's head."""

    def __init__(self, port, cut_after, stall=False):
        self.target = ('127.0.0.1', port)
        self.cut_after = cut_after
        self.stall = stall
        self.stalled = threading.Event()
        self.cut_done = False
        self.requests = []
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.endpoint = f'http://127.0.0.1:{self.listener.getsockname()[1]}'
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.listener.close()
        for sock in self.sockets:
            _close(sock)

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._forward, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._forward, args=(upstream, client, False), daemon=True).start()

    def _forward(self, source, sink, from_client):
        forwarded = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client and data[:4] in (b'PUT ', b'HEAD', b'DELE', b'GET '):
                    self.requests.append(data.split(b'\r\n\r\n')[0].decode('latin-1'))
                if from_client and not self.cut_done and forwarded + len(data) > self.cut_after:
                    self.cut_done = True
                    sink.sendall(data[:self.cut_after - forwarded])
                    if self.stall:
                        self.stalled.set()
                        return                      # keeps both sockets open until the proxy closes
                    break
                sink.sendall(data)
                forwarded += len(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
