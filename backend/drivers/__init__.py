"""Drivers: how the VM manager talks to hosts. One interface (`base.HostDriver`), one
implementation per kind of host, chosen by the scheme of the host's URI."""
from .base import DriverError


def open_driver(uri, files, network=None, peer=None, capacity=(0, 0), names=None, shared_storage=None):
    """The driver of the host at `uri`. `files` keeps instance files on this machine; `network` sets
    up bridges on it; `peer` (ec2_peer.PeerSettings) says how to reach a peer cloud; `names` (the
    installation's HostNames, else the network's) names domains and bridges; `shared_storage` is
    where a libvirt host sees this machine's state directory (None: copy disks to the host)."""
    scheme = uri.split(':', 1)[0]
    if scheme in LIBVIRT_SCHEMES or scheme.startswith(('qemu+', 'xen+')):
        from .libvirt import LibvirtDriver
        from ..host_names import HostNames
        names = names or (network.names if network is not None else HostNames())
        return LibvirtDriver(uri, files, network, names, shared_storage)
    if scheme in PEER_SCHEMES:
        if peer is None:
            raise DriverError(f'the peer {uri} has no registered credentials')
        from .ec2_peer import Ec2PeerDriver
        return Ec2PeerDriver(uri, peer, capacity)
    raise DriverError(f'no driver for hosts of the scheme {scheme!r}')


def features_of(domain_type):
    """What a kind of host can do, known from its host row's domain type without opening it, so the
    API can refuse at once what an instance's host cannot do."""
    if domain_type == 'ec2':
        from .ec2_peer import Ec2PeerDriver
        return Ec2PeerDriver.features
    from .libvirt import LibvirtDriver
    return LibvirtDriver.features


LIBVIRT_SCHEMES = frozenset({'qemu', 'xen', 'test'})
PEER_SCHEMES = frozenset({'ec2+http', 'ec2+https'})
