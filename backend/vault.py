"""Encryption of the secrets the database keeps (access-key secrets), with a key kept beside it.

The key lives in `secret.key` in the state directory, readable by its owner only, and is created
on first use. Someone who copies the database alone learns no secret.
"""
import os
import stat
import threading

from cryptography.fernet import Fernet, InvalidToken


class VaultError(Exception):
    """The key file is unusable, or a token was not made with it."""


class Vault:
    def __init__(self, key_path):
        self.key_path = key_path
        self._fernet = None
        self._lock = threading.Lock()

    def encrypt(self, secret):
        return self._cipher().encrypt(secret.encode('utf-8')).decode('ascii')

    def decrypt(self, token):
        try:
            return self._cipher().decrypt(token.encode('ascii')).decode('utf-8')
        except InvalidToken:
            raise VaultError(f'a stored secret was not encrypted with {self.key_path}') from None

    def _cipher(self):
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(self._load_or_create_key())
            return self._fernet

    def _load_or_create_key(self):
        try:
            return self._read_key()
        except FileNotFoundError:
            pass
        _create_key_file(self.key_path)
        return self._read_key()

    def _read_key(self):
        with open(self.key_path, 'rb') as key_file:
            mode = os.fstat(key_file.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise VaultError(f'{self.key_path} is accessible to other users; chmod 600 it')
            key = key_file.read().strip()
        if not key:
            raise VaultError(f'{self.key_path} is empty')
        return key


def _create_key_file(path):
    """Write a new key to `path` unless another process got there first.

    The key is written to a private temporary file and then hard-linked into place, so the key file
    appears whole, with mode 0600, or not at all.
    """
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.{threading.get_ident()}')
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, 'wb') as key_file:
            key_file.write(Fernet.generate_key() + b'\n')
            key_file.flush()
            os.fsync(key_file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it: use theirs
    finally:
        os.unlink(temporary)
