"""SSH key pairs of an account: created here (the private key is returned once, never kept) or
imported from an OpenSSH public key.

Fingerprints are computed the way EC2 computes them, so they can be checked with the commands of
EC2's documentation:
- RSA, created: SHA-1 of the private key in DER PKCS#8, colon-separated hex;
- RSA, imported: MD5 of the public key in DER SubjectPublicKeyInfo, colon-separated hex;
- ED25519, either way: SHA-256 of the OpenSSH public key blob, in base64 with its padding.
"""
import base64
import dataclasses
import datetime
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from .db import Prepared
from .errors import Conflict, InvalidValue, NotFound
from .models import KeyPair as KeyPairRow, new_resource_id

KEY_TYPES = ('rsa', 'ed25519')
RSA_KEY_BITS = 2048
MIN_IMPORTED_RSA_BITS = 1024
MAX_NAME_LENGTH = 255

_ALL_OF_OWNER = Prepared(select(KeyPairRow.__table__).where(KeyPairRow.owner == bindparam('owner'))
                         .order_by(KeyPairRow.name))


@dataclasses.dataclass(frozen=True)
class KeyPair:
    key_pair_id: str
    name: str
    key_type: str
    fingerprint: str
    public_key: str  # an OpenSSH public key line whose comment is the key pair's name
    created_at: datetime.datetime
    owner: str


class KeyPairService:
    def __init__(self, db):
        self._db = db

    def create(self, owner, name, key_type='rsa'):
        """Generate a key pair; returns it with the private key in PEM, which is not kept."""
        _check_name(name)
        if key_type not in KEY_TYPES:
            raise InvalidValue(f"Invalid value '{key_type}' for KeyType; use rsa or ed25519")
        if key_type == 'rsa':
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
            private_pem = _private_pem(private_key, serialization.PrivateFormat.TraditionalOpenSSL)
            fingerprint = created_rsa_fingerprint(private_key)
        else:
            private_key = ed25519.Ed25519PrivateKey.generate()
            private_pem = _private_pem(private_key, serialization.PrivateFormat.OpenSSH)
            fingerprint = ed25519_fingerprint(private_key.public_key())
        key_pair = self._insert(owner, name, key_type, fingerprint, private_key.public_key())
        return key_pair, private_pem

    def import_key(self, owner, name, public_key_material):
        """Keep the public half of a key pair made elsewhere (an OpenSSH public key line)."""
        _check_name(name)
        public_key = parse_public_key(public_key_material)
        if isinstance(public_key, rsa.RSAPublicKey):
            return self._insert(owner, name, 'rsa', imported_rsa_fingerprint(public_key), public_key)
        return self._insert(owner, name, 'ed25519', ed25519_fingerprint(public_key), public_key)

    def describe(self, owner, names=None, ids=None):
        """The owner's key pairs, all or those named; asking for a missing one is an error."""
        if not names and not ids:   # what clients poll: a prepared statement
            with self._db.prepared() as read:
                return [_record(row) for row in read(_ALL_OF_OWNER, owner=owner)]
        query = select(KeyPairRow.__table__).where(KeyPairRow.owner == owner)
        if names:
            query = query.where(KeyPairRow.name.in_(names))
        if ids:
            query = query.where(KeyPairRow.key_pair_id.in_(ids))
        with self._db.query() as connection:
            rows = connection.execute(query.order_by(KeyPairRow.name)).all()
            _check_all_found(connection, owner, names, KeyPairRow.name, "The key pair '{}' does not exist")
            _check_all_found(connection, owner, ids, KeyPairRow.key_pair_id, "The key pair ID '{}' does not exist")
        return [_record(row) for row in rows]

    def delete(self, owner, name=None, key_pair_id=None):
        """Delete by name, by id, or by both. As in EC2, deleting a missing name succeeds."""
        if name is None and key_pair_id is None:
            raise InvalidValue('The request must contain the parameter KeyName or KeyPairId',
                               code='MissingParameter')
        query = select(KeyPairRow).where(KeyPairRow.owner == owner)
        if name is not None:
            query = query.where(KeyPairRow.name == name)
        if key_pair_id is not None:
            query = query.where(KeyPairRow.key_pair_id == key_pair_id)
        with self._db.write() as session:
            row = session.scalar(query)
            if row is not None:
                session.delete(row)
            elif name is None:
                raise NotFound('InvalidKeyPair.NotFound', f"The key pair ID '{key_pair_id}' does not exist")

    def _insert(self, owner, name, key_type, fingerprint, public_key):
        row = KeyPairRow(key_pair_id=new_resource_id('key'), owner=owner, name=name, key_type=key_type,
                         fingerprint=fingerprint, public_key=_openssh_line(public_key, name))
        try:
            with self._db.write() as session:
                if self._name_taken(session, owner, name):
                    raise _duplicate(name)
                session.add(row)
        except IntegrityError:
            with self._db.read() as session:
                if self._name_taken(session, owner, name):  # a concurrent request took the name
                    raise _duplicate(name) from None
            raise
        return _record(row)

    @staticmethod
    def _name_taken(session, owner, name):
        return session.scalar(select(KeyPairRow.key_pair_id).where(
            KeyPairRow.owner == owner, KeyPairRow.name == name)) is not None


def parse_public_key(material):
    """An RSA or ED25519 public key from an OpenSSH public key line (bytes or str)."""
    if isinstance(material, str):
        material = material.encode('utf-8')
    try:
        public_key = serialization.load_ssh_public_key(material.strip())
    except (ValueError, UnsupportedAlgorithm):
        raise _bad_format('Key is not in valid OpenSSH public key format') from None
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_IMPORTED_RSA_BITS:
            raise _bad_format(f'RSA keys must have at least {MIN_IMPORTED_RSA_BITS} bits')
        return public_key
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key
    raise _bad_format('Only ssh-rsa and ssh-ed25519 keys are supported')


def created_rsa_fingerprint(private_key):
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return _colon_hex(hashlib.sha1(der).digest())


def imported_rsa_fingerprint(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return _colon_hex(hashlib.md5(der).digest())


def ed25519_fingerprint(public_key):
    return base64.b64encode(hashlib.sha256(_openssh_blob(public_key)).digest()).decode('ascii')


def _openssh_blob(public_key):
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def _openssh_line(public_key, comment):
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode('ascii')} {comment}"


def _private_pem(private_key, private_format):
    return private_key.private_bytes(serialization.Encoding.PEM, private_format,
                                     serialization.NoEncryption()).decode('ascii')


def _colon_hex(digest):
    return ':'.join(f'{byte:02x}' for byte in digest)


def _check_name(name):
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
        raise InvalidValue(f'Key pair names must be 1 to {MAX_NAME_LENGTH} characters long')
    if not all(' ' <= char <= '~' for char in name):
        raise InvalidValue(f"Invalid key pair name {name!r}: only printable ASCII characters are allowed")


def _check_all_found(session, owner, wanted, column, message):
    """Raise NotFound for the first of `wanted` the owner has no key pair for."""
    if not wanted:
        return
    found = set(session.execute(select(column).where(KeyPairRow.owner == owner, column.in_(wanted))).scalars())
    for value in wanted:
        if value not in found:
            raise NotFound('InvalidKeyPair.NotFound', message.format(value))


def _bad_format(message):
    return InvalidValue(message, code='InvalidKey.Format')


def _duplicate(name):
    return Conflict('InvalidKeyPair.Duplicate', f"The keypair '{name}' already exists.")


def _record(row):
    return KeyPair(row.key_pair_id, row.name, row.key_type, row.fingerprint, row.public_key,
                   row.created_at, row.owner)
