"""Who is calling: the one place that turns a verified signature into a principal.

Every protocol brings its own proof (a SigV4/SigV2 signature over the HTTP request, a WS-Security
signature over a SOAP envelope); all of them end here, so a user's access is decided in one place.
"""
import dataclasses

from . import auth


@dataclasses.dataclass(frozen=True)
class Principal:
    account_id: str
    user_name: str
    service: str = auth.SERVICE      # what a SigV4 signature was scoped to (ec2, sts or iam)


class Authenticator:
    def __init__(self, cloud):
        self.cloud = cloud

    def signed(self, signed_request, services=(auth.SERVICE,)):
        """The principal of a request signed with an access key (SigV4 or SigV2), or EC2Error."""
        verified = auth.verify(signed_request, self._secret_for, region=self.cloud.config.region,
                               services=services)
        credential = self.cloud.users.secret_for(verified.access_key)
        return Principal(credential.account_id, credential.user_name, verified.service)

    def _secret_for(self, access_key_id):
        credential = self.cloud.users.secret_for(access_key_id)
        return credential.secret if credential else None
