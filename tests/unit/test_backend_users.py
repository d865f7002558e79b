import re

import pytest

from backend.errors import Conflict, InvalidValue, NotFound


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_create_issues_an_account_and_an_access_key(cloud):
    assert not cloud.users.any_users()
    new = cloud.users.create('alice')
    assert new.name == 'alice'
    assert re.fullmatch(r'\d{12}', new.account_id)
    assert re.fullmatch(r'AKIA[A-Z2-7]{16}', new.access_key_id)
    assert re.fullmatch(r'[A-Za-z0-9+/]{40}', new.secret_access_key)
    assert new.secret_access_key not in repr(new)
    assert cloud.users.any_users()


def test_each_user_has_its_own_account_and_keys(cloud):
    alice, bob = cloud.users.create('alice'), cloud.users.create('bob')
    assert alice.account_id != bob.account_id
    assert alice.access_key_id != bob.access_key_id
    assert alice.secret_access_key != bob.secret_access_key


def test_list_shows_active_keys_without_secrets(cloud):
    bob = cloud.users.create('bob')
    alice = cloud.users.create('alice')
    listed = cloud.users.list()
    assert [user.name for user in listed] == ['alice', 'bob']
    assert listed[0].account_id == alice.account_id
    assert listed[1].access_key_ids == (bob.access_key_id,)
    assert listed[0].created_at.tzinfo is not None
    assert 'secret' not in repr(listed).lower()


def test_duplicate_and_malformed_names_are_refused(cloud):
    cloud.users.create('alice')
    with pytest.raises(Conflict) as raised:
        cloud.users.create('alice')
    assert raised.value.code == 'EntityAlreadyExists'
    for bad in ('', 'has space', 'x' * 65, 'slash/name'):
        with pytest.raises(InvalidValue):
            cloud.users.create(bad)


def test_secret_for_resolves_an_active_key(cloud):
    new = cloud.users.create('alice')
    credential = cloud.users.secret_for(new.access_key_id)
    assert (credential.secret, credential.account_id, credential.user_name) == (
        new.secret_access_key, new.account_id, 'alice')
    assert new.secret_access_key not in repr(credential)
    assert cloud.users.secret_for('AKIAAAAAAAAAAAAAAAAA') is None


def test_rotate_keys_replaces_the_active_key(cloud):
    old = cloud.users.create('alice')
    assert cloud.users.secret_for(old.access_key_id) is not None  # now cached
    new = cloud.users.rotate_keys('alice')
    assert new.account_id == old.account_id
    assert new.access_key_id != old.access_key_id
    assert cloud.users.secret_for(old.access_key_id) is None
    assert cloud.users.secret_for(new.access_key_id).secret == new.secret_access_key
    assert cloud.users.get('alice').access_key_ids == (new.access_key_id,)


def test_delete_revokes_keys_at_once_and_frees_the_name(cloud):
    old = cloud.users.create('alice')
    assert cloud.users.secret_for(old.access_key_id) is not None  # now cached
    cloud.users.delete('alice')
    assert cloud.users.secret_for(old.access_key_id) is None
    assert cloud.users.list() == []
    assert cloud.users.create('alice').account_id != old.account_id


def test_unknown_users_are_not_found(cloud):
    for operation in (cloud.users.delete, cloud.users.rotate_keys, cloud.users.get):
        with pytest.raises(NotFound) as raised:
            operation('nobody')
        assert raised.value.code == 'NoSuchEntity'


def test_delete_also_removes_the_users_key_pairs(cloud):
    alice = cloud.users.create('alice')
    cloud.keypairs.create(alice.account_id, 'laptop', 'ed25519')
    cloud.users.delete('alice')
    assert cloud.keypairs.describe(alice.account_id) == []


def _count_credential_loads(users, monkeypatch):
    """Record every time `users` goes to the database for a credential."""
    loads = []
    original = users._load_credential

    def counting(access_key_id):
        loads.append(access_key_id)
        return original(access_key_id)
    monkeypatch.setattr(users, '_load_credential', counting)
    return loads


def test_credentials_are_cached_for_a_few_seconds(cloud, monkeypatch):
    clock = FakeClock()
    users = type(cloud.users)(cloud.db, cloud.vault, cache_seconds=5, clock=clock)
    new = users.create('alice')
    loads = _count_credential_loads(users, monkeypatch)
    users.secret_for(new.access_key_id)
    clock.now += 4
    users.secret_for(new.access_key_id)
    assert len(loads) == 1
    clock.now += 2
    assert users.secret_for(new.access_key_id).secret == new.secret_access_key
    assert len(loads) == 2


def test_cache_stays_bounded(cloud, monkeypatch):
    users = type(cloud.users)(cloud.db, cloud.vault, cache_entries=2, clock=FakeClock())
    keys = [users.create(name).access_key_id for name in ('a', 'b', 'c')]
    loads = _count_credential_loads(users, monkeypatch)
    for key in keys:
        users.secret_for(key)
    users.secret_for(keys[0])  # evicted to make room for the third
    users.secret_for(keys[2])  # still cached
    assert loads == keys + [keys[0]]


def test_admins_are_flagged_and_the_flag_reaches_their_credentials(cloud):
    alice, root = cloud.users.create('alice'), cloud.users.create('root', admin=True)
    assert (alice.admin, root.admin) == (False, True)
    assert cloud.users.secret_for(alice.access_key_id).admin is False
    assert cloud.users.secret_for(root.access_key_id).admin is True
    cloud.users.set_admin('alice', True)
    cloud.users.set_admin('root', False)
    # Changed in this process: the cached credentials are dropped at once.
    assert cloud.users.secret_for(alice.access_key_id).admin is True
    assert cloud.users.secret_for(root.access_key_id).admin is False
    assert {user.name: user.admin for user in cloud.users.list()} == {'alice': True, 'root': False}
    with pytest.raises(NotFound):
        cloud.users.set_admin('nobody', True)
