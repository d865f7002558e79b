"""Peers: other EC2 clouds registered as hosts (`reservoir host add ec2+https://…`).

A peer is a host row (so the scheduler, claims and the monitor treat it as any host) with a `peers`
row beside it: the region, the access key, the secret key encrypted by the vault like users' secrets,
the signature version, and the capacity the administrator declared as instance types and counts
(OpenNebula's EC2 driver did the same) or, when none is declared, the peer's own limit on running
instances (DescribeAccountAttributes max-instances) counted in EC2's default instance type; either is
summed into the host's vCPUs and memory. `peer_images` says
which image of the peer runs instances of a local image there.
"""
import json

from sqlalchemy import select

from .drivers import open_driver
from .drivers.ec2_peer import SCHEMES, PeerSettings, endpoint_of
from .drivers.base import DriverError
from .errors import InvalidValue, NotFound
from .models import Host as HostRow, Image as ImageRow, Peer, PeerImage

SIGNATURES = ('v4', 'v2')
PLACEMENTS = ('burst', 'zone')
# A peer's instance limit is a count of instances; it is taken as that many of EC2's default type.
LIMIT_INSTANCE_TYPE = 'm1.small'


def is_peer_uri(uri):
    return uri.split('://', 1)[0] in SCHEMES


class PeerService:
    def __init__(self, db, hosts, vault, instance_types, installation=''):
        self.db = db
        self.installation = installation      # the tag that marks this cloud's instances on a peer
        self.hosts = hosts
        self.vault = vault
        self.instance_types = instance_types

    def add(self, uri, name, region, access_key, secret_key, signature='v4', capacity=None, zone=None,
            placement='burst'):
        """Register a peer cloud as a host with the capacity `capacity` ({instance type: count}), used
        once the local hosts are full (placement 'burst') or only by launches into its zone ('zone')."""
        try:
            endpoint_of(uri)
        except DriverError as error:
            raise InvalidValue(str(error)) from None
        if signature not in SIGNATURES:
            raise InvalidValue(f"signature must be one of {', '.join(SIGNATURES)}")
        if placement not in PLACEMENTS:
            raise InvalidValue(f"placement must be one of {', '.join(PLACEMENTS)}")
        if not region or not access_key or not secret_key:
            raise InvalidValue('a peer needs a region, an access key and a secret key')
        settings = PeerSettings(region, access_key, secret_key, signature, installation=self.installation)
        capacity = capacity or self._capacity_from_peer(uri, settings)
        cpus, memory_mib = self._capacity_of(capacity)
        host = self.hosts.add(uri, name=name, cpus=cpus, memory_mib=memory_mib, zone=zone, domain_type='ec2')
        with self.db.write() as session:
            session.add(Peer(host_id=host.host_id, region=region, access_key=access_key,
                             encrypted_secret=self.vault.encrypt(secret_key), signature=signature,
                             capacity=json.dumps(capacity or {}, sort_keys=True), placement=placement))
        return host

    def map_image(self, image_id, host_name, peer_image_id):
        """`reservoir image map`: instances of `image_id` run on `peer_image_id` at that peer."""
        host_id = self.hosts.get(host_name).host_id
        with self.db.write() as session:
            if session.get(Peer, host_id) is None:
                raise InvalidValue(f"host '{host_name}' is not a peer cloud")
            if session.get(ImageRow, image_id) is None:
                raise NotFound('InvalidAMIID.NotFound', f"The image id '[{image_id}]' does not exist")
            mapping = session.get(PeerImage, (host_id, image_id))
            if mapping is None:
                session.add(PeerImage(host_id=host_id, image_id=image_id, peer_image_id=peer_image_id))
            else:
                mapping.peer_image_id = peer_image_id

    def settings(self, host_id):
        """The PeerSettings a driver needs, the secret decrypted; None when the host is no peer."""
        with self.db.read() as session:
            peer = session.get(Peer, host_id)
            if peer is None:
                return None
            images = dict(session.execute(select(PeerImage.image_id, PeerImage.peer_image_id)
                                          .where(PeerImage.host_id == host_id)).all())
        return PeerSettings(peer.region, peer.access_key, self.vault.decrypt(peer.encrypted_secret), peer.signature,
                            images=images, installation=self.installation)

    def console_output(self, host_name, instance_id):
        """The console of an instance on a peer cloud (None when the host is no peer); b'' while the
        peer cannot be asked, as before a first boot."""
        with self.db.read() as session:
            host_id, uri, cpus, memory_mib = session.execute(
                select(HostRow.id, HostRow.uri, HostRow.cpus, HostRow.memory_mib)
                .where(HostRow.name == host_name)).one()
        settings = self.settings(host_id)
        if settings is None:
            return None
        driver = open_driver(uri, None, peer=settings, capacity=(cpus, memory_mib))
        try:
            return driver.console_output(instance_id)
        except DriverError:
            return b''
        finally:
            driver.close()

    def _capacity_from_peer(self, uri, settings):
        """{EC2's default type: the peer account's instance limit}, asked of the peer now."""
        driver = open_driver(uri, None, peer=settings)
        try:
            limit = driver.instance_limit()
        except DriverError as error:
            raise InvalidValue(f'the peer cannot say its capacity ({error}); declare it: --capacity TYPE=COUNT') \
                from None
        finally:
            driver.close()
        if limit < 1:
            raise InvalidValue('the peer allows this account no instances; declare the capacity: --capacity TYPE=COUNT')
        return {LIMIT_INSTANCE_TYPE: limit}

    def _capacity_of(self, capacity):
        cpus = memory_mib = 0
        for instance_type, count in capacity.items():
            kind = self.instance_types.get(instance_type)
            if kind is None:
                raise InvalidValue(f"unknown instance type '{instance_type}' in the capacity")
            if not isinstance(count, int) or count < 1:
                raise InvalidValue(f'the count of {instance_type} must be a whole number of at least 1')
            cpus += kind.vcpus * count
            memory_mib += kind.memory_mib * count
        if not cpus:
            raise InvalidValue('say what the peer may run: --capacity TYPE=COUNT (repeatable)')
        return cpus, memory_mib

