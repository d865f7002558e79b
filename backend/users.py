"""Users, their accounts and their access keys.

Each user owns one account (a 12-digit id, as in EC2) and signs requests with an access key. Secrets
are kept encrypted by the vault; the signature check of every request asks `secret_for`, which keeps
decrypted credentials in memory for a few seconds.
"""
import base64
import dataclasses
import datetime
import re
import secrets
import threading
import time

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from .errors import Conflict, InvalidValue, NotFound
from .models import CLOUD_ACCOUNT, AccessKey, User as UserRow

ACCESS_KEY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
_USER_NAME = re.compile(r'[A-Za-z0-9+=,.@_-]{1,64}')


@dataclasses.dataclass(frozen=True)
class NewUser:
    """A user's fresh credentials; the only time the secret is shown."""
    name: str
    account_id: str
    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    admin: bool = False


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    account_id: str
    access_key_ids: tuple  # the active ones
    created_at: datetime.datetime
    admin: bool = False    # may call the administrators' actions


@dataclasses.dataclass(frozen=True)
class Credential:
    """What request authentication needs to know about an access key."""
    secret: str = dataclasses.field(repr=False)
    account_id: str
    user_name: str
    admin: bool = False


class UserService:
    def __init__(self, db, vault, cache_seconds=5.0, cache_entries=4096, clock=time.monotonic):
        self._db = db
        self._vault = vault
        self._credentials = _ExpiringCache(cache_seconds, cache_entries, clock)

    def create(self, name, admin=False):
        _check_name(name)
        try:
            with self._db.write() as session:
                if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                    raise _duplicate(name)
                user = UserRow(name=name, account_id=_unused_account_id(session), admin=bool(admin))
                access_key_id, secret = self._add_access_key(user)
                session.add(user)
        except IntegrityError:  # a concurrent create of the same name won
            raise _duplicate(name) from None
        return NewUser(name, user.account_id, access_key_id, secret, bool(user.admin))

    def get(self, name):
        with self._db.read() as session:
            return _user_record(_find(session, name))

    def list(self):
        with self._db.read() as session:
            users = session.scalars(select(UserRow).options(selectinload(UserRow.access_keys))
                                    .order_by(UserRow.name))
            return [_user_record(user) for user in users]

    def delete(self, name):
        """Delete the user, its access keys and its key pairs; its images stay."""
        with self._db.write() as session:
            user = _find(session, name)
            revoked = [key.access_key_id for key in user.access_keys]
            session.delete(user)
        self._credentials.discard(revoked)

    def set_admin(self, name, admin):
        """Grant or revoke the administrators' actions; other processes notice within the cache's seconds."""
        with self._db.write() as session:
            user = _find(session, name)
            user.admin = bool(admin)
            keys = [key.access_key_id for key in user.access_keys]
        self._credentials.discard(keys)
        return self.get(name)

    def rotate_keys(self, name):
        """Give the user a new access key and deactivate the ones it had."""
        with self._db.write() as session:
            user = _find(session, name)
            revoked = [key.access_key_id for key in user.access_keys if key.active]
            for key in user.access_keys:
                key.active = False
            access_key_id, secret = self._add_access_key(user)
        self._credentials.discard(revoked)
        return NewUser(name, user.account_id, access_key_id, secret, bool(user.admin))

    def secret_for(self, access_key_id):
        """The credential of an active access key, or None if there is no such active key."""
        credential = self._credentials.get(access_key_id)
        if credential is None:
            credential = self._load_credential(access_key_id)
            if credential is not None:
                self._credentials.put(access_key_id, credential)
        return credential

    def any_users(self):
        with self._db.read() as session:
            return session.scalar(select(exists().select_from(UserRow)))

    def _load_credential(self, access_key_id):
        with self._db.read() as session:
            row = session.execute(
                select(AccessKey.encrypted_secret, UserRow.account_id, UserRow.name, UserRow.admin)
                .join(AccessKey.user)
                .where(AccessKey.access_key_id == access_key_id, AccessKey.active)
            ).first()
        if row is None:
            return None
        return Credential(self._vault.decrypt(row.encrypted_secret), row.account_id, row.name, bool(row.admin))

    def _add_access_key(self, user):
        access_key_id = 'AKIA' + ''.join(secrets.choice(ACCESS_KEY_ALPHABET) for _ in range(16))
        secret = base64.b64encode(secrets.token_bytes(30)).decode('ascii')  # 40 characters
        user.access_keys.append(AccessKey(access_key_id=access_key_id, active=True,
                                          encrypted_secret=self._vault.encrypt(secret)))
        return access_key_id, secret


class _ExpiringCache:
    """A bounded map whose entries are forgotten `ttl` seconds after they were stored."""

    def __init__(self, ttl, max_entries, clock):
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries = {}  # key -> (expires_at, value), oldest first
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key, value):
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self._max_entries:
                self._evict()
            self._entries[key] = (self._clock() + self._ttl, value)

    def discard(self, keys):
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def _evict(self):
        now = self._clock()
        for key in [key for key, (expires_at, _) in self._entries.items() if expires_at <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]


def _check_name(name):
    if not isinstance(name, str) or not _USER_NAME.fullmatch(name):
        raise InvalidValue(f"Invalid user name {name!r}: use 1 to 64 letters, digits or +=,.@_-")


def _find(session, name):
    user = session.scalar(select(UserRow).where(UserRow.name == name))
    if user is None:
        raise NotFound('NoSuchEntity', f"The user '{name}' does not exist")
    return user


def _unused_account_id(session):
    while True:
        account_id = f'{secrets.randbelow(10 ** 12):012d}'
        if account_id == CLOUD_ACCOUNT:
            continue      # the cloud's own images are owned by it
        if session.scalar(select(UserRow.id).where(UserRow.account_id == account_id)) is None:
            return account_id


def _duplicate(name):
    return Conflict('EntityAlreadyExists', f"The user '{name}' already exists")


def _user_record(user):
    active = tuple(key.access_key_id for key in user.access_keys if key.active)
    return User(user.name, user.account_id, active, user.created_at, bool(user.admin))
