"""boto 2.49 connections as old scripts make them: SigV4 (boto 2's default for EC2) or SigV2 forced."""
import boto.auth
import boto.ec2.connection
from boto.ec2.regioninfo import RegionInfo


class SigV2Connection(boto.ec2.connection.EC2Connection):
    """EC2 signed with Signature Version 2, as boto did before it defaulted to SigV4."""

    def _required_auth_capability(self):
        return ['ec2']


def connect(server, credentials, signature, secret=None):
    """An EC2Connection to a live server signing with 'sigv4' or 'sigv2' (with `secret`, if given)."""
    cls = SigV2Connection if signature == 'sigv2' else boto.ec2.connection.EC2Connection
    # boto 2 takes the host from the region, not from a host argument.
    connection = cls(credentials['access_key_id'], secret or credentials['secret_access_key'], is_secure=False,
                     port=server.port, path='/', region=RegionInfo(name=server.region, endpoint=server.host))
    if signature == 'sigv4':
        # Left alone, boto derives the scope from the host name: region '0', service '127'.
        connection.auth_region_name = server.region
        connection.auth_service_name = 'ec2'
        assert isinstance(connection._auth_handler, boto.auth.HmacAuthV4Handler)
    else:
        assert isinstance(connection._auth_handler, boto.auth.QuerySignatureV2AuthHandler)
    return connection
