"""Drivers: how the VM manager talks to hosts. One interface (`base.HostDriver`), one
implementation per kind of host, chosen by the scheme of the host's URI."""
from .base import DriverError


def open_driver(uri, files, network=None):
    """The driver of the host at `uri`. `files` keeps instance files on this machine; `network` sets
    up bridges on it."""
    scheme = uri.split(':', 1)[0]
    if scheme in LIBVIRT_SCHEMES or scheme.startswith(('qemu+', 'xen+')):
        from .libvirt import LibvirtDriver
        return LibvirtDriver(uri, files, network)
    raise DriverError(f'no driver for hosts of the scheme {scheme!r}')


LIBVIRT_SCHEMES = frozenset({'qemu', 'xen', 'test'})
