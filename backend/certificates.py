"""Users' X.509 certificates, which sign SOAP requests, and the cloud's certificate authority.

`create` issues a key and a certificate signed by the cloud's own CA, as EC2's CreateCertificate
did: the private key is shown once and not kept. `add` registers a certificate a user brings.
Either way a certificate counts only while registered to its user and not revoked; being signed by
the CA is not enough (a revoked one stays signed). The CA's key is kept in the state directory,
encrypted by the vault like every other secret.

The replay cache of accepted signatures lives here too, in the database, so that every server
process refuses a message another one accepted.
"""
import dataclasses
import datetime
import hashlib
import json
import os
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .errors import InvalidValue, NotFound
from .models import SeenSignature, User, UserCertificate, utcnow

CA_FILE = 'cloud-ca.json'
KEY_BITS = 2048
MIN_KEY_BITS = 2048
USER_CERTIFICATE_DAYS = 365
CA_DAYS = 10 * 365


@dataclasses.dataclass(frozen=True)
class Certificate:
    certificate_id: str            # hex SHA-256 of the DER certificate
    user_name: str
    subject: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    issued_here: bool
    revoked_at: datetime.datetime | None
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class IssuedCertificate:
    """A certificate just issued, with its private key: the only time the key is shown."""
    certificate: Certificate
    certificate_pem: str
    private_key_pem: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Owner:
    """Who a certificate presented with a request belongs to, and whether it may sign now."""
    certificate_id: str
    user_name: str
    account_id: str
    revoked: bool
    not_before: datetime.datetime
    not_after: datetime.datetime


def certificate_id(der):
    return hashlib.sha256(der).hexdigest()


class CertificateService:
    def __init__(self, db, vault, home):
        self._db = db
        self._authority = CertificateAuthority(home / CA_FILE, vault)

    def create(self, user_name):
        """Issue a key and a certificate for the user, signed by the cloud's CA."""
        with self._db.read() as session:
            user = _user(session, user_name)
            account_id = user.account_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        certificate = self._authority.issue(key.public_key(), user_name, account_id)
        record = self._register(user_name, certificate, issued_here=True)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode('ascii')
        return IssuedCertificate(record, _pem(certificate), key_pem)

    def add(self, user_name, pem):
        """Register a certificate the user brings (PEM); its key must be RSA of 2048 bits or more."""
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode('ascii') if isinstance(pem, str) else pem)
        except ValueError:
            raise InvalidValue('The file is not a PEM X.509 certificate') from None
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_KEY_BITS:
            raise InvalidValue(f'A certificate for SOAP must have an RSA key of at least {MIN_KEY_BITS} bits')
        if certificate.not_valid_after_utc <= utcnow():
            raise InvalidValue('The certificate has expired')
        return self._register(user_name, certificate, issued_here=False)

    def list(self, user_name):
        with self._db.read() as session:
            user = _user(session, user_name)
            rows = session.scalars(select(UserCertificate).where(UserCertificate.user_id == user.id)
                                   .order_by(UserCertificate.created_at, UserCertificate.certificate_id))
            return [_record(row, user_name) for row in rows]

    def revoke(self, user_name, wanted_id):
        """Revoke one of the user's certificates, named by its id or an unambiguous prefix of it."""
        with self._db.write() as session:
            user = _user(session, user_name)
            rows = session.scalars(select(UserCertificate).where(
                UserCertificate.user_id == user.id,
                UserCertificate.certificate_id.startswith(wanted_id.lower(), autoescape=True))).all()
            if len(rows) != 1 or len(wanted_id) < 8:
                raise NotFound('InvalidCertificate.NotFound',
                               f"User '{user_name}' has no certificate {wanted_id!r}" if not rows else
                               f"{wanted_id!r} names {len(rows)} certificates or is shorter than 8 digits")
            if rows[0].revoked_at is None:
                rows[0].revoked_at = utcnow()
            return _record(rows[0], user_name)

    def owner_of(self, der):
        """The Owner of a presented certificate (DER), or None if it is registered to nobody."""
        with self._db.read() as session:
            row = session.execute(
                select(UserCertificate.certificate_id, UserCertificate.revoked_at, UserCertificate.not_before,
                       UserCertificate.not_after, User.name, User.account_id)
                .join(User, User.id == UserCertificate.user_id)
                .where(UserCertificate.certificate_id == certificate_id(der))).first()
        if row is None:
            return None
        return Owner(row.certificate_id, row.name, row.account_id, row.revoked_at is not None,
                     row.not_before, row.not_after)

    def remember_signature(self, digest, until):
        """Note an accepted signature; False if it was seen before (a replay). Forgets expired ones."""
        try:
            with self._db.write() as session:
                if session.get(SeenSignature, digest) is not None:
                    return False
                session.execute(delete(SeenSignature).where(SeenSignature.expires_at < utcnow()))
                session.add(SeenSignature(digest=digest, expires_at=until))
        except IntegrityError:     # another process recorded it at the same moment
            return False
        return True

    def authority_pem(self):
        return _pem(self._authority.certificate())

    def _register(self, user_name, certificate, issued_here):
        der = certificate.public_bytes(serialization.Encoding.DER)
        try:
            with self._db.write() as session:
                user = _user(session, user_name)
                if session.get(UserCertificate, certificate_id(der)) is not None:
                    raise InvalidValue('This certificate is already registered')
                row = UserCertificate(
                    certificate_id=certificate_id(der), user_id=user.id, certificate_pem=_pem(certificate),
                    subject=certificate.subject.rfc4514_string()[:512],
                    not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc,
                    issued_here=issued_here, created_at=utcnow())
                session.add(row)
            return _record(row, user_name)
        except IntegrityError:
            raise InvalidValue('This certificate is already registered') from None


class CertificateAuthority:
    """The cloud's CA: a self-signed certificate and its key, made on first use, in one file whose
    key part the vault encrypts."""

    def __init__(self, path, vault):
        self._path = path
        self._vault = vault
        self._lock = threading.Lock()
        self._loaded = None

    def certificate(self):
        return self._load()[0]

    def issue(self, public_key, user_name, account_id):
        authority, authority_key = self._load()
        now = utcnow()
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f'Reservoir account {account_id}'),
                             x509.NameAttribute(NameOID.COMMON_NAME, user_name)])
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(authority.subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=USER_CERTIFICATE_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .sign(authority_key, hashes.SHA256()))

    def _load(self):
        with self._lock:
            if self._loaded is None:
                if not self._path.exists():
                    _create_file(self._path, self._new_authority())
                stored = json.loads(self._path.read_text())
                key = serialization.load_pem_private_key(self._vault.decrypt(stored['encrypted_key']).encode(),
                                                         password=None)
                self._loaded = (x509.load_pem_x509_certificate(stored['certificate'].encode()), key)
            return self._loaded

    def _new_authority(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f'Reservoir cloud CA {os.urandom(4).hex()}')])
        now = utcnow()
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                       .sign(key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode('ascii')
        return json.dumps({'certificate': _pem(certificate), 'encrypted_key': self._vault.encrypt(key_pem)})


def _create_file(path, text):
    """Write `text` to `path` (mode 0600) unless another process got there first: theirs is kept."""
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.{threading.get_ident()}')
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, 'w') as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def _pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode('ascii')


def _user(session, name):
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound('NoSuchEntity', f"The user '{name}' does not exist")
    return user


def _record(row, user_name):
    return Certificate(row.certificate_id, user_name, row.subject, row.not_before, row.not_after,
                       row.issued_here, row.revoked_at, row.created_at)
