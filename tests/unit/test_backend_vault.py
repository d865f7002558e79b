import stat

import pytest

from backend.cloud import Cloud
from backend.vault import Vault, VaultError


def test_key_file_is_created_private_on_first_use(tmp_path):
    key_path = tmp_path / 'secret.key'
    vault = Vault(key_path)
    assert not key_path.exists()  # nothing happens before a secret is handled
    token = vault.encrypt('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY')
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert 'wJalrXUtnFEMI' not in token
    assert vault.decrypt(token) == 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
    assert [path.name for path in tmp_path.iterdir()] == ['secret.key']


def test_key_survives_reopening(tmp_path):
    token = Vault(tmp_path / 'secret.key').encrypt('s3cret')
    assert Vault(tmp_path / 'secret.key').decrypt(token) == 's3cret'


def test_a_different_key_cannot_decrypt(tmp_path):
    token = Vault(tmp_path / 'one.key').encrypt('s3cret')
    with pytest.raises(VaultError):
        Vault(tmp_path / 'two.key').decrypt(token)


def test_a_key_readable_by_others_is_refused(tmp_path):
    key_path = tmp_path / 'secret.key'
    Vault(key_path).encrypt('s3cret')
    key_path.chmod(0o644)
    with pytest.raises(VaultError, match='chmod 600'):
        Vault(key_path).encrypt('s3cret')


def test_database_never_holds_a_secret_in_clear(tmp_path, monkeypatch):
    home = tmp_path / 'home'
    monkeypatch.setenv('RESERVOIR_HOME', str(home))
    monkeypatch.delenv('RESERVOIR_DATABASE_URL', raising=False)
    with Cloud.open() as cloud:
        new = cloud.users.create('alice')
        rotated = cloud.users.rotate_keys('alice')
    stored = b''.join(path.read_bytes() for path in home.glob('reservoir.db*'))
    assert new.access_key_id.encode() in stored  # the file is the right one
    for secret in (new.secret_access_key, rotated.secret_access_key):
        assert secret.encode() not in stored
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / 'secret.key').stat().st_mode) == 0o600
