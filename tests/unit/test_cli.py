import json
import shutil
import subprocess
import sys
import types

import pytest

from backend.cli import main


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    home = tmp_path / 'home'
    monkeypatch.setenv('RESERVOIR_HOME', str(home))
    monkeypatch.delenv('RESERVOIR_DATABASE_URL', raising=False)
    monkeypatch.delenv('RESERVOIR_CONF', raising=False)
    return home


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, '--json')
    assert (code, err) == (0, '')
    return json.loads(out)


def assert_fails(capsys, argv, *fragments):
    """Running `argv` fails with one line on stderr that contains every fragment."""
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert err.startswith('reservoir: error: ') and err.count('\n') == 1
    assert 'Traceback' not in err
    for fragment in fragments:
        assert fragment in err


@pytest.fixture
def fake_server(monkeypatch):
    """Stands in for the front-end's server module, recording how it was asked to serve."""
    calls = []
    module = types.ModuleType('ec2api.server')
    module.serve = lambda cloud, host, port, **options: calls.append((cloud.users.list(), host, port, options))
    monkeypatch.setitem(sys.modules, 'ec2api.server', module)
    return calls


def test_user_create_json(capsys):
    created = run_json(capsys, 'user', 'create', 'alice')
    assert sorted(created) == ['access_key_id', 'account_id', 'admin', 'name', 'secret_access_key']
    assert created['name'] == 'alice' and len(created['secret_access_key']) == 40
    listed = run_json(capsys, 'user', 'list')
    assert [(user['name'], user['account_id'], user['access_key_ids']) for user in listed] == [
        ('alice', created['account_id'], [created['access_key_id']])]


def test_user_plain_output(capsys):
    code, out, _ = run(capsys, 'user', 'create', 'alice')
    assert code == 0 and 'Secret access key:' in out
    code, out, _ = run(capsys, 'user', 'list')
    assert code == 0 and out.splitlines()[0].split() == ['NAME', 'ACCOUNT', 'ADMIN', 'ACCESS', 'KEYS', 'CREATED']
    assert out.splitlines()[1].startswith('alice ')


def test_user_rotate_and_delete(capsys):
    created = run_json(capsys, 'user', 'create', 'alice')
    rotated = run_json(capsys, 'user', 'rotate-keys', 'alice')
    assert rotated['account_id'] == created['account_id']
    assert rotated['access_key_id'] != created['access_key_id']
    assert run_json(capsys, 'user', 'list')[0]['access_key_ids'] == [rotated['access_key_id']]
    code, out, _ = run(capsys, 'user', 'delete', 'alice')
    assert code == 0 and 'alice' in out
    assert run_json(capsys, 'user', 'list') == []


def test_user_errors_are_one_line(capsys):
    run(capsys, 'user', 'create', 'alice')
    assert_fails(capsys, ('user', 'create', 'alice'), 'already exists')
    assert_fails(capsys, ('user', 'delete', 'nobody'), "'nobody' does not exist")
    assert_fails(capsys, ('user', 'create', 'bad name'), 'Invalid user name')


@pytest.mark.skipif(not shutil.which('qemu-img'), reason='needs qemu-img')
def test_image_register_and_list(capsys, tmp_path):
    disk = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '8M'], check=True)
    bob = run_json(capsys, 'user', 'create', 'bob')     # no user 'admin': images are the cloud's
    image = run_json(capsys, 'image', 'register', str(disk), '--name', 'base', '--public',
                     '--description', 'a disk')
    assert (image['name'], image['public'], image['state'], image['description'], image['owner']) == (
        'base', True, 'available', 'a disk', '000000000000')
    code, out, _ = run(capsys, 'image', 'register', str(disk), '--name', 'mine', '--owner', 'bob')
    assert code == 0 and out.startswith('ami-')
    listed = run_json(capsys, 'image', 'list')['images']
    assert [(entry['name'], entry['owner']) for entry in listed] == [
        ('base', image['owner']), ('mine', bob['account_id'])]
    code, out, _ = run(capsys, 'image', 'list')
    assert code == 0 and out.splitlines()[0].split()[:2] == ['IMAGE', 'NAME'] and len(out.splitlines()) == 3


@pytest.mark.skipif(not shutil.which('qemu-img'), reason='needs qemu-img')
def test_image_register_belongs_to_the_cloud_whatever_users_come_and_go(capsys, tmp_path):
    disk = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '8M'], check=True)
    run_json(capsys, 'user', 'create', 'admin')
    assert run(capsys, 'user', 'delete', 'admin')[0] == 0
    run_json(capsys, 'user', 'create', 'carol')
    first = run_json(capsys, 'image', 'register', str(disk), '--name', 'first')
    admin = run_json(capsys, 'user', 'create', 'admin')     # a new 'admin' does not take them over
    second = run_json(capsys, 'image', 'register', str(disk), '--name', 'second')
    assert first['owner'] == second['owner'] == '000000000000' != admin['account_id']
    assert_fails(capsys, ('image', 'register', str(disk), '--name', 'third', '--owner', 'gone'),
                 "'gone' does not exist")
    assert [entry['name'] for entry in run_json(capsys, 'image', 'list')['images']] == ['first', 'second']


def test_image_register_errors_are_one_line(capsys, tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('not a disk')
    assert_fails(capsys, ('image', 'register', str(text), '--name', 'notes', '--owner', 'nobody'),
                          "'nobody' does not exist")
    assert_fails(capsys, ('image', 'register', str(text), '--name', 'notes'))
    assert_fails(capsys, ('image', 'register', str(tmp_path / 'absent'), '--name', 'gone'),
                          'not a file')


def test_serve_creates_the_first_user_and_prints_how_to_connect(capsys, fake_server):
    code, out, err = run(capsys, 'serve', '--listen', '127.0.0.1:18773')
    assert (code, err) == (0, '')
    [(users, host, port, _options)] = fake_server
    assert (host, port) == ('127.0.0.1', 18773)
    [admin] = users
    assert admin.name == 'admin' and admin.access_key_ids[0] in out
    assert f'export AWS_ACCESS_KEY_ID={admin.access_key_ids[0]} AWS_SECRET_ACCESS_KEY=' in out
    assert 'AWS_DEFAULT_REGION=reservoir-1' in out
    assert 'aws ec2 describe-regions --endpoint-url http://127.0.0.1:18773' in out
    assert "boto3.client('ec2', endpoint_url='http://127.0.0.1:18773'" in out


def test_serve_prints_no_keys_once_users_exist(capsys, fake_server):
    run(capsys, 'user', 'create', 'alice')
    code, out, _ = run(capsys, 'serve')
    assert code == 0 and 'AWS_SECRET_ACCESS_KEY' not in out
    [(users, host, port, _options)] = fake_server
    assert [user.name for user in users] == ['alice'] and (host, port) == ('127.0.0.1', 8773)


def test_serve_refuses_a_malformed_listen_address(capsys, fake_server):
    assert_fails(capsys, ('serve', '--listen', 'nowhere'), 'HOST:PORT')
    assert fake_server == []


def test_serve_passes_processes_and_threads_and_refuses_nonsense(capsys, fake_server):
    assert run(capsys, 'serve', '--processes', '3', '--threads', '2')[0] == 0
    assert run(capsys, 'serve')[0] == 0
    for flag, value in (('--threads', '0'), ('--processes', '-1'), ('--threads', 'many')):
        code, _, err = run(capsys, 'serve', flag, value)
        assert code == 2 and 'at least 1' in err
    assert len(fake_server) == 2
    asked, default = (options for _users, _host, _port, options in fake_server)
    assert asked['workers'] == 3 and asked['threads'] == 2
    assert default['workers'] == 1 and 1 <= default['threads'] <= 8


def test_usage_errors_and_help(capsys):
    code, _, err = run(capsys, 'user', 'explode')
    assert code == 2 and 'invalid choice' in err
    assert run(capsys, '--help')[0] == 0


def test_broken_configuration_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv('RESERVOIR_CONF', str(tmp_path / 'empty'))
    assert_fails(capsys, ('user', 'list',), 'missing')


def test_simulated_hosts_and_networks_from_the_command_line(capsys):
    code, out, err = run(capsys, 'host', 'add', '--simulated', '--count', '2', '--cpus', '4',
                         '--memory', '2048', '--json')
    assert code == 0, err
    hosts = json.loads(out)
    assert [host['name'] for host in hosts] == ['sim-00001', 'sim-00002']
    assert all(host['uri'].startswith('test://') and host['cpus'] == 4 for host in hosts)
    code, out, err = run(capsys, 'net', 'create', 'lab', '10.1.0.0/20', '--json')
    assert code == 0, err
    assert json.loads(out)[0]['size'] == 4094
    code, out, err = run(capsys, 'host', 'disable', 'sim-00001', '--json')
    assert json.loads(out)[0]['enabled'] is False


def test_bad_compute_input_is_one_line_and_non_zero(capsys):
    for arguments in (('host', 'add', '--simulated', '--cpus', '2'), ('net', 'create', 'x', '10.0.0.1/20'),
                      ('host', 'remove', 'nowhere')):
        code, out, err = run(capsys, *arguments)
        assert code == 1 and err.startswith('reservoir: error: ') and err.count('\n') == 1, err


def test_a_host_with_shared_storage_says_where_it_sees_the_state_directory(capsys):
    (host,) = run_json(capsys, 'host', 'add', 'qemu+tcp://node1/system', '--name', 'node1', '--cpus', '2',
                       '--memory', '2048', '--shared-storage', '/mnt/cloud')
    assert host['shared_storage'] == '/mnt/cloud'
    (plain,) = run_json(capsys, 'host', 'add', 'qemu+tcp://node2/system', '--name', 'node2', '--cpus', '2',
                        '--memory', '2048')
    assert plain['shared_storage'] is None                  # its disks are copied into its own pool
    assert_fails(capsys, ('host', 'add', 'qemu+tcp://node3/system', '--cpus', '2', '--memory', '2048',
                          '--shared-storage', 'relative/path'), 'absolute path')


def test_administrators_are_made_granted_revoked_and_listed(capsys):
    assert run_json(capsys, 'user', 'create', 'root', '--admin')['admin'] is True
    assert run_json(capsys, 'user', 'create', 'alice')['admin'] is False
    assert {user['name']: user['admin'] for user in run_json(capsys, 'user', 'list')} == {'alice': False, 'root': True}
    assert run_json(capsys, 'user', 'set-admin', 'alice', '--on')['admin'] is True
    assert run_json(capsys, 'user', 'set-admin', 'root', '--off')['admin'] is False
    code, out, _ = run(capsys, 'user', 'list')
    assert code == 0 and 'ADMIN' in out.splitlines()[0]
    assert [line.split()[2] for line in out.splitlines()[1:]] == ['yes', 'no']
    assert run(capsys, 'user', 'set-admin', 'alice')[0] != 0       # --on or --off is required
    assert_fails(capsys, ['user', 'set-admin', 'nobody', '--on'], 'nobody')
