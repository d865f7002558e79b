"""A real SOAP client for the tests: zeep, generated from the project's WSDL, signing each request
with WS-Security as EC2's SOAP clients did (X.509 BinarySecurityToken, a wsu:Timestamp, RSA-SHA1 or
RSA-SHA256 over the Body and the Timestamp), through zeep's own signature code (xmlsec)."""
import datetime
import json
import pathlib

import zeep
import zeep.wsse.signature
import zeep.wsse.utils
from lxml import etree
from zeep.wsse.signature import BinarySignature, MemorySignature

import ec2api

WSDL_DIRECTORY = pathlib.Path(ec2api.__file__).with_name('wsdl')
WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd'
BINDING = '{http://ec2.amazonaws.com/doc/%s/}AmazonEC2Binding'
RSA_SHA256 = zeep.wsse.signature.xmlsec.Transform.RSA_SHA256
SHA256 = zeep.wsse.signature.xmlsec.Transform.SHA256


class Timestamp:
    """Adds the wsu:Timestamp that zeep does not add itself; `offset` moves the clock."""

    def __init__(self, offset=datetime.timedelta(0), lifetime=datetime.timedelta(minutes=5)):
        self.offset = offset
        self.lifetime = lifetime

    def apply(self, envelope, headers):
        security = zeep.wsse.utils.get_security_header(envelope)
        created = datetime.datetime.now(datetime.timezone.utc) + self.offset
        timestamp = etree.SubElement(security, f'{{{WSU}}}Timestamp')
        etree.SubElement(timestamp, f'{{{WSU}}}Created').text = _iso(created)
        etree.SubElement(timestamp, f'{{{WSU}}}Expires').text = _iso(created + self.lifetime)
        return envelope, headers

    def verify(self, envelope):
        return envelope


class Signature(MemorySignature):
    """zeep's BinarySignature from PEM in memory; responses are not verified (EC2 never signed them)."""
    apply = BinarySignature.apply

    def verify(self, envelope):
        return envelope


class WsSecurity:
    """The Timestamp, then the signature over it and the Body (zeep verifies a response with one
    wsse object only, so the two are composed here)."""

    def __init__(self, timestamp, signature=None):
        self.timestamp = timestamp
        self.signature = signature

    def apply(self, envelope, headers):
        envelope, headers = self.timestamp.apply(envelope, headers)
        if self.signature is not None:
            envelope, headers = self.signature.apply(envelope, headers)
        return envelope, headers

    def verify(self, envelope):
        return envelope


def certificate_of(live, user):
    """A key and certificate issued to `user` by the live server's cloud CA (`reservoir user
    create-certificate`): {'certificate_id', 'certificate', 'private_key'}."""
    return json.loads(live.admin('user', 'create-certificate', user, '--json'))


def client(endpoint, credentials, version='2010-08-31', path='/', sha256=False, offset=datetime.timedelta(0),
           sign=True):
    """A zeep client of the EC2 SOAP API at `endpoint` + `path`, signing with `credentials`."""
    signature = Signature(credentials['private_key'].encode(), credentials['certificate'].encode(),
                          signature_method=RSA_SHA256 if sha256 else None,
                          digest_method=SHA256 if sha256 else None) if sign else None
    soap = zeep.Client(str(WSDL_DIRECTORY / f'ec2-{version}.wsdl'), wsse=WsSecurity(Timestamp(offset), signature))
    return soap, soap.create_service(BINDING % version, endpoint.rstrip('/') + path)


def self_signed(name='someone'):
    """A key and a self-signed certificate of one's own, as PEM: {'certificate', 'private_key'}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return {'certificate': certificate.public_bytes(serialization.Encoding.PEM).decode(),
            'private_key': key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()}


def _iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')
