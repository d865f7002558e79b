"""OpenSSH public keys for the import tests, with the fingerprints AWS gives key pairs, computed here
independently of the server."""
import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


class PublicKey:
    def __init__(self, line, fingerprint):
        self.line = line                # 'ssh-rsa AAAA... comment'
        self.fingerprint = fingerprint  # as EC2 reports it for the imported key


def _colon_hex(digest):
    return ':'.join(f'{byte:02x}' for byte in digest)


def new_rsa_public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    # An imported RSA key's fingerprint is the MD5 of its DER SubjectPublicKeyInfo.
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(line + ' laptop', _colon_hex(hashlib.md5(der).digest()))


def new_ed25519_public_key():
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return PublicKey(line, ed25519_fingerprint_of_blob(base64.b64decode(line.split()[1])))


def ed25519_fingerprint_of_blob(blob):
    """An ED25519 key's fingerprint: base64 SHA-256 of its OpenSSH key blob, as OpenSSH 6.8+ shows it."""
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def created_key_fingerprint(private_key_material):
    """The fingerprint EC2 reports for a key pair it created, from the private key it returned:
    SHA-1 of the DER PKCS#8 private key for RSA, as for ED25519 above otherwise."""
    key = serialization.load_pem_private_key(private_key_material.encode(), password=None) \
        if 'OPENSSH' not in private_key_material \
        else serialization.load_ssh_private_key(private_key_material.encode(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        blob = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).split()[1]
        return ed25519_fingerprint_of_blob(base64.b64decode(blob))
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return _colon_hex(hashlib.sha1(der).digest())
