"""Who is calling: the one place that turns a verified signature into a principal.

Every protocol brings its own proof (a SigV4/SigV2 signature over the HTTP request, a WS-Security
signature over a SOAP envelope); all of them end here, so a user's access is decided in one place.
"""
import dataclasses
import datetime
import logging

from backend.certificates import certificate_id

from . import auth, wssecurity
from .errors import EC2Error

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Principal:
    account_id: str
    user_name: str
    service: str = auth.SERVICE      # what a SigV4 signature was scoped to (ec2, sts or iam)
    admin: bool = False              # may call the administrators' actions (users.admin)


class Authenticator:
    def __init__(self, cloud):
        self.cloud = cloud

    def signed(self, signed_request, services=(auth.SERVICE,)):
        """The principal of a request signed with an access key (SigV4 or SigV2), or EC2Error."""
        # Behind a proxy that strips [server] path_prefix, the client signed the path with it.
        prefix = self.cloud.config.server.path_prefix
        if prefix:
            signed_request = dataclasses.replace(signed_request, path=prefix + signed_request.path)
        verified = auth.verify(signed_request, self._secret_for, region=self.cloud.config.region,
                               services=services)
        credential = self.cloud.users.secret_for(verified.access_key)
        return Principal(credential.account_id, credential.user_name, verified.service, credential.admin)

    def _secret_for(self, access_key_id):
        credential = self.cloud.users.secret_for(access_key_id)
        return credential.secret if credential else None

    def certified(self, envelope):
        """The principal of a SOAP envelope signed with WS-Security by a registered, unrevoked
        certificate of an active user, once per message; EC2Error AuthFailure otherwise (logged)."""
        who = {'certificate': '-', 'user': '-'}
        try:
            return self._certified(envelope, who)
        except EC2Error as refusal:
            # Who tried and why; never the message, its signature or its key.
            log.warning('SOAP request refused: %s (certificate %s, user %s)', refusal.message,
                        who['certificate'], who['user'])
            raise

    def _certified(self, envelope, who):
        skew = datetime.timedelta(seconds=self.cloud.config.server.soap_clock_skew_seconds)
        parts = wssecurity.read(envelope, max_skew=skew)
        who['certificate'] = certificate_id(parts.certificate_der)[:16]
        owner = self.cloud.certificates.owner_of(parts.certificate_der)
        if owner is None:
            raise wssecurity.refuse('the certificate is not registered to any user')
        who['user'] = owner.user_name
        if owner.revoked:
            raise wssecurity.refuse('the certificate has been revoked')
        now = datetime.datetime.now(datetime.timezone.utc)
        if not owner.not_before <= now <= owner.not_after:
            raise wssecurity.refuse('the certificate is not valid at this time')
        signed = parts.verify()
        if not self.cloud.certificates.remember_signature(signed.signature_digest, signed.remember_until):
            raise wssecurity.refuse('this signed message was received before (a replay)')
        return Principal(owner.account_id, owner.user_name)
