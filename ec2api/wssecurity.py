"""WS-Security X.509 signatures on SOAP requests, checked as EC2 checked them (2006-2010 profile).

A request carries in its `wsse:Security` header an X.509 BinarySecurityToken, a `wsu:Timestamp`
and an XML signature (RSA-SHA1 or RSA-SHA256, exclusive canonicalization, SHA-1 or SHA-256
digests) whose references are exactly the envelope's own Body and that Timestamp. Anything else is
refused before any cryptography: other algorithms or transforms, references to other elements, an
`Id` that two elements share (how a wrapping attack makes a signed element stand in for another),
a Timestamp outside the skew window. The signature itself is verified by xmlsec (libxmlsec1), the
library zeep signs with, limited to those algorithms; canonicalization is libxml2's.

Whose certificate it is, whether it is revoked and whether the signature was seen before are for the
caller (authentication.py): this module only says the message was signed by the token's key.
"""
import base64
import binascii
import dataclasses
import datetime
import hashlib

import xmlsec
from cryptography import x509

from .errors import EC2Error

SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/'
WSSE = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd'
WSU = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd'
DS = 'http://www.w3.org/2000/09/xmldsig#'
X509_TOKEN = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3'
BASE64_ENCODING = ('http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0'
                   '#Base64Binary')
EXCLUSIVE_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#'
SIGNATURE_METHODS = {'http://www.w3.org/2000/09/xmldsig#rsa-sha1': xmlsec.constants.TransformRsaSha1,
                     'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256': xmlsec.constants.TransformRsaSha256}
DIGEST_METHODS = {'http://www.w3.org/2000/09/xmldsig#sha1': xmlsec.constants.TransformSha1,
                  'http://www.w3.org/2001/04/xmlenc#sha256': xmlsec.constants.TransformSha256}
MAX_SKEW = datetime.timedelta(minutes=5)      # clocks may differ by this much, either way ([server] setting)
MAX_AGE = datetime.timedelta(minutes=15)      # a message created longer ago is refused, whatever it says
ID_ATTRIBUTES = (f'{{{WSU}}}Id', 'Id', 'ID', 'id', '{http://www.w3.org/XML/1998/namespace}id')


@dataclasses.dataclass(frozen=True)
class SignedMessage:
    certificate: x509.Certificate
    certificate_der: bytes
    signature_digest: str           # SHA-256 of the SignatureValue: what the replay cache keeps
    remember_until: datetime.datetime   # after this its Timestamp is refused anyway


def refuse(reason):
    return EC2Error('AuthFailure', f'The request signature was refused: {reason}.')


def read(envelope, now=None, max_skew=MAX_SKEW):
    """Check a signed envelope's structure and Timestamp, allowing the sender's clock `max_skew`
    either way; return what verify() then needs."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    security = _security_header(envelope)
    body = _only(envelope, f'{{{SOAP_ENV}}}Body', 'a Body')
    timestamp = _only(security, f'{{{WSU}}}Timestamp', 'a wsu:Timestamp in the Security header')
    created = _check_timestamp(timestamp, now, max_skew)
    signature = _only(security, f'{{{DS}}}Signature', 'a ds:Signature in the Security header')
    _check_signed_info(signature, envelope, body, timestamp)
    der = _token(security)
    return _Parts(body, timestamp, signature, der, created + MAX_AGE + max_skew)


@dataclasses.dataclass(frozen=True)
class _Parts:
    body: object
    timestamp: object
    signature: object
    certificate_der: bytes
    remember_until: datetime.datetime

    def verify(self):
        """The SignedMessage, once the signature is verified with the token's key."""
        try:
            certificate = x509.load_der_x509_certificate(self.certificate_der)
            key = xmlsec.Key.from_memory(self.certificate_der, xmlsec.constants.KeyDataFormatCertDer)
        except (ValueError, xmlsec.Error):
            raise refuse('the BinarySecurityToken is not an X.509 certificate') from None
        context = xmlsec.SignatureContext()
        context.key = key
        for node in (self.body, self.timestamp):
            context.register_id(node, 'Id', WSU)
        for transform in (xmlsec.constants.TransformExclC14N, *DIGEST_METHODS.values()):
            context.enable_reference_transform(transform)
        for transform in (xmlsec.constants.TransformExclC14N, *SIGNATURE_METHODS.values()):
            context.enable_signature_transform(transform)
        try:
            context.verify(self.signature)
        except xmlsec.Error:
            raise refuse('the signature does not match the message and the certificate\'s key') from None
        value = self.signature.findtext(f'{{{DS}}}SignatureValue') or ''
        digest = hashlib.sha256(''.join(value.split()).encode('ascii', 'replace')).hexdigest()
        return SignedMessage(certificate, self.certificate_der, digest, self.remember_until)


def _security_header(envelope):
    header = _only(envelope, f'{{{SOAP_ENV}}}Header', 'a SOAP Header with a wsse:Security element (the '
                                                     'request is not signed)')
    return _only(header, f'{{{WSSE}}}Security', 'a wsse:Security header (the request is not signed)')


def _only(parent, tag, what):
    found = parent.findall(tag)
    if len(found) != 1:
        raise refuse(f'the message must have exactly one {what}, not {len(found)}' if found
                     else f'the message has no {what.removeprefix("a ")}')
    return found[0]


def _check_timestamp(timestamp, now, max_skew):
    created = _instant(timestamp.findtext(f'{{{WSU}}}Created'), 'Created')
    expires = _instant(timestamp.findtext(f'{{{WSU}}}Expires'), 'Expires')
    if created > now + max_skew:
        raise refuse('the Timestamp was created in the future')
    if expires < now - max_skew:
        raise refuse('the Timestamp has expired')
    if created < now - MAX_AGE:
        raise refuse(f'the Timestamp is older than {int(MAX_AGE.total_seconds() // 60)} minutes')
    return created


def _instant(text, name):
    if not text:
        raise refuse(f'the Timestamp has no {name}')
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace('Z', '+00:00'))
    except ValueError:
        raise refuse(f'the Timestamp\'s {name} is not a date and time') from None
    if moment.tzinfo is None:
        raise refuse(f'the Timestamp\'s {name} has no time zone')
    return moment


def _check_signed_info(signature, envelope, body, timestamp):
    signed_info = _only(signature, f'{{{DS}}}SignedInfo', 'SignedInfo in the signature')
    _check_algorithm(signed_info, 'CanonicalizationMethod', {EXCLUSIVE_C14N})
    _check_algorithm(signed_info, 'SignatureMethod', SIGNATURE_METHODS)
    references = signed_info.findall(f'{{{DS}}}Reference')
    targets = [_reference_target(reference, envelope) for reference in references]
    # Exactly these two, each once: a signature over anything else proves nothing about this request.
    if len(targets) != 2 or {id(target) for target in targets} != {id(body), id(timestamp)}:
        raise refuse('the signature must cover exactly the envelope\'s Body and the Security header\'s '
                     'Timestamp')


def _check_algorithm(parent, tag, allowed):
    node = _only(parent, f'{{{DS}}}{tag}', f'{tag} in the signature')
    if node.get('Algorithm') not in allowed:
        raise refuse(f'the {tag} {node.get("Algorithm")!r} is not accepted')


def _reference_target(reference, envelope):
    uri = reference.get('URI') or ''
    if not uri.startswith('#') or len(uri) < 2:
        raise refuse('a signature reference must name an element of the message by its wsu:Id')
    transforms = reference.findall(f'{{{DS}}}Transforms/{{{DS}}}Transform')
    if any(transform.get('Algorithm') != EXCLUSIVE_C14N for transform in transforms):
        raise refuse('a signature reference may only be transformed by exclusive canonicalization')
    _check_algorithm(reference, 'DigestMethod', DIGEST_METHODS)
    wanted = uri[1:]
    holders = [node for node in envelope.iter() if isinstance(node.tag, str)
               and any(node.get(attribute) == wanted for attribute in ID_ATTRIBUTES)]
    if len(holders) != 1:
        raise refuse(f'the id {wanted[:80]!r} is held by {len(holders)} elements, not one')
    if holders[0].get(f'{{{WSU}}}Id') != wanted:
        raise refuse('a signed element must be named by its wsu:Id')
    return holders[0]


def _token(security):
    token = _only(security, f'{{{WSSE}}}BinarySecurityToken', 'BinarySecurityToken in the Security header')
    if token.get('ValueType') != X509_TOKEN or token.get('EncodingType', BASE64_ENCODING) != BASE64_ENCODING:
        raise refuse('the BinarySecurityToken must be an X.509 v3 certificate in base64')
    try:
        return base64.b64decode(''.join((token.text or '').split()), validate=True)
    except (binascii.Error, ValueError):
        raise refuse('the BinarySecurityToken is not base64') from None
