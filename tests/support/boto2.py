"""boto 2.49 connections as old scripts make them: SigV4 (boto 2's default for EC2) or SigV2 forced."""
import boto.auth
import boto.ec2.connection
from boto.ec2.regioninfo import RegionInfo


class SigV2Connection(boto.ec2.connection.EC2Connection):
    def _required_auth_capability(self):
        return ['ec2']


def connect(server, credentials, signature):
    """An EC2Connection to a live server signing with 'sigv4' or 'sigv2'."""
    cls = SigV2Connection if signature == 'sigv2' else boto.ec2.connection.EC2Connection
    connection = cls(credentials['access_key_id'], credentials['secret_access_key'], is_secure=False,
                     port=server.port, path='/', region=RegionInfo(name=server.region, endpoint=server.host))
    if signature == 'sigv4':
        connection.auth_region_name = server.region
        connection.auth_service_name = 'ec2'
        assert isinstance(connection._auth_handler, boto.auth.HmacAuthV4Handler)
    else:
        assert isinstance(connection._auth_handler, boto.auth.QuerySignatureV2AuthHandler)
    return connection
