"""Key pairs, with fingerprints checked against the commands of EC2's documentation."""
import re
import shutil
import subprocess

import pytest

from backend.errors import Conflict, InvalidValue, NotFound

needs_openssh = pytest.mark.skipif(not shutil.which('ssh-keygen') or not shutil.which('openssl'),
                                   reason='needs ssh-keygen and openssl')


@pytest.fixture
def owner(cloud):
    return cloud.users.create('alice').account_id


def _shell(command, cwd):
    return subprocess.run(command, shell=True, cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _digest_of(openssl_output):
    return openssl_output.rsplit('= ', 1)[1]


def _ssh_keygen_pair(tmp_path, key_type):
    _shell(f'ssh-keygen -q -t {key_type} -N "" -C theirs -f key', tmp_path)
    return (tmp_path / 'key.pub').read_bytes()


@needs_openssh
def test_created_rsa_key(cloud, owner, tmp_path):
    key_pair, private_pem = cloud.keypairs.create(owner, 'laptop')
    assert private_pem.startswith('-----BEGIN RSA PRIVATE KEY-----')
    assert re.fullmatch(r'key-[0-9a-f]{17}', key_pair.key_pair_id)
    assert (key_pair.name, key_pair.key_type, key_pair.owner) == ('laptop', 'rsa', owner)
    (tmp_path / 'key.pem').write_text(private_pem)
    (tmp_path / 'key.pem').chmod(0o600)
    expected = _digest_of(_shell('openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt'
                                 ' | openssl sha1 -c', tmp_path))
    assert key_pair.fingerprint == expected
    public = _shell('ssh-keygen -y -f key.pem', tmp_path)
    assert key_pair.public_key.split()[:2] == public.split()[:2]
    assert key_pair.public_key.endswith(' laptop')


@needs_openssh
def test_created_ed25519_key(cloud, owner, tmp_path):
    key_pair, private_pem = cloud.keypairs.create(owner, 'laptop', key_type='ed25519')
    assert private_pem.startswith('-----BEGIN OPENSSH PRIVATE KEY-----')
    (tmp_path / 'key').write_text(private_pem)
    (tmp_path / 'key').chmod(0o600)
    listed = _shell('ssh-keygen -l -E sha256 -f key', tmp_path)
    assert listed.split()[1] == 'SHA256:' + key_pair.fingerprint.rstrip('=')
    assert key_pair.fingerprint.endswith('=') and len(key_pair.fingerprint) == 44
    assert key_pair.public_key.split()[:2] == _shell('ssh-keygen -y -f key', tmp_path).split()[:2]


@needs_openssh
def test_imported_rsa_key(cloud, owner, tmp_path):
    public_line = _ssh_keygen_pair(tmp_path, 'rsa -b 2048')
    key_pair = cloud.keypairs.import_key(owner, 'desk', public_line)
    expected = _digest_of(_shell('ssh-keygen -e -f key -m PEM | openssl rsa -RSAPublicKey_in -outform DER'
                                 ' | openssl md5 -c', tmp_path))
    assert key_pair.fingerprint == expected
    assert key_pair.key_type == 'rsa'
    assert key_pair.public_key == ' '.join(public_line.decode().split()[:2] + ['desk'])


@needs_openssh
def test_imported_ed25519_key(cloud, owner, tmp_path):
    public_line = _ssh_keygen_pair(tmp_path, 'ed25519')
    key_pair = cloud.keypairs.import_key(owner, 'desk', public_line.decode())
    listed = _shell('ssh-keygen -l -E sha256 -f key.pub', tmp_path)
    assert listed.split()[1] == 'SHA256:' + key_pair.fingerprint.rstrip('=')
    assert key_pair.key_type == 'ed25519'


@pytest.mark.parametrize('material', [
    b'', b'not a key', b'ssh-rsa !!!notbase64', b'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5',
    b'-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n', b'\xff\xfe',
])
def test_import_refuses_garbage(cloud, owner, material):
    with pytest.raises(InvalidValue) as raised:
        cloud.keypairs.import_key(owner, 'junk', material)
    assert raised.value.code == 'InvalidKey.Format'


@needs_openssh
def test_import_refuses_unsupported_algorithms(cloud, owner, tmp_path):
    with pytest.raises(InvalidValue) as raised:
        cloud.keypairs.import_key(owner, 'ec', _ssh_keygen_pair(tmp_path, 'ecdsa'))
    assert raised.value.code == 'InvalidKey.Format'


def test_names_are_unique_per_owner(cloud, owner):
    cloud.keypairs.create(owner, 'laptop', 'ed25519')
    with pytest.raises(Conflict) as raised:
        cloud.keypairs.create(owner, 'laptop', 'ed25519')
    assert raised.value.code == 'InvalidKeyPair.Duplicate'
    other = cloud.users.create('bob').account_id
    assert cloud.keypairs.create(other, 'laptop', 'ed25519')[0].owner == other


@pytest.mark.parametrize('name', ['', 'x' * 256, 'caf\u00e9', 'tab\there'])
def test_malformed_names_are_refused(cloud, owner, name):
    with pytest.raises(InvalidValue):
        cloud.keypairs.create(owner, name, 'ed25519')


def test_unknown_key_type_is_refused(cloud, owner):
    with pytest.raises(InvalidValue):
        cloud.keypairs.create(owner, 'laptop', 'dsa')


def test_describe_by_name_and_id_within_the_owner(cloud, owner):
    first, _ = cloud.keypairs.create(owner, 'b-key', 'ed25519')
    second, _ = cloud.keypairs.create(owner, 'a-key', 'ed25519')
    cloud.keypairs.create(cloud.users.create('bob').account_id, 'c-key', 'ed25519')
    assert [key.name for key in cloud.keypairs.describe(owner)] == ['a-key', 'b-key']
    assert cloud.keypairs.describe(owner, names=['b-key']) == [first]
    assert cloud.keypairs.describe(owner, ids=[second.key_pair_id]) == [second]
    assert cloud.keypairs.describe(owner, names=['a-key'], ids=[second.key_pair_id]) == [second]


def test_describe_of_a_missing_key_is_not_found(cloud, owner):
    cloud.keypairs.create(owner, 'laptop', 'ed25519')
    bob = cloud.users.create('bob').account_id
    for kwargs in ({'names': ['laptop', 'missing']}, {'ids': ['key-0123456789abcdef0']}):
        with pytest.raises(NotFound) as raised:
            cloud.keypairs.describe(owner, **kwargs)
        assert raised.value.code == 'InvalidKeyPair.NotFound'
    with pytest.raises(NotFound, match='laptop'):
        cloud.keypairs.describe(bob, names=['laptop'])  # another account's key is invisible


def test_delete_by_name_or_id(cloud, owner):
    by_name, _ = cloud.keypairs.create(owner, 'one', 'ed25519')
    by_id, _ = cloud.keypairs.create(owner, 'two', 'ed25519')
    cloud.keypairs.delete(owner, name='one')
    cloud.keypairs.delete(owner, key_pair_id=by_id.key_pair_id)
    assert cloud.keypairs.describe(owner) == []
    cloud.keypairs.create(owner, 'one', 'ed25519')  # the name is free again


def test_delete_of_a_missing_name_succeeds_but_a_missing_id_does_not(cloud, owner):
    cloud.keypairs.delete(owner, name='never-existed')
    with pytest.raises(NotFound):
        cloud.keypairs.delete(owner, key_pair_id='key-0123456789abcdef0')
    with pytest.raises(InvalidValue):
        cloud.keypairs.delete(owner)


def test_delete_cannot_reach_another_accounts_key(cloud, owner):
    key_pair, _ = cloud.keypairs.create(owner, 'laptop', 'ed25519')
    bob = cloud.users.create('bob').account_id
    cloud.keypairs.delete(bob, name='laptop')
    with pytest.raises(NotFound):
        cloud.keypairs.delete(bob, key_pair_id=key_pair.key_pair_id)
    assert cloud.keypairs.describe(owner) == [key_pair]
