"""The names an installation gives what it makes on a machine, so two installations can share one.

Network interfaces, iptables chains and router namespaces are machine-wide, and so are the domains
of a libvirt daemon: each name starts with the installation's prefix ([cloud] host_prefix). What
only this machine sees (interfaces, the filter chain, namespaces) also carries a few hex digits of
the state directory's digest, so two installations left with the default prefix keep apart too.
Domain names carry the prefix alone: a remote host may be driven by any worker of the installation,
whatever its state directory.

Interface names fit the kernel's 15 characters: a prefix of at most 4 characters, 4 hex digits, a
letter for the kind of link, and the database key of its network or VPC (up to 6 digits).
"""
import dataclasses
import functools
import hashlib
import re

DEFAULT_PREFIX = 'rsv'
PREFIX_PATTERN = re.compile(r'[a-z][a-z0-9]{1,3}')
# Taps are named 'r' and hex digits (host_network.tap_name); no other link may look like one.
TAP_LIKE = re.compile(r'r[0-9a-f]')
INTERFACE_NAME_LIMIT = 15


def installation_digest(installation):
    return hashlib.sha256(str(installation).encode()).hexdigest()


def prefix_problem(prefix):
    """Why `prefix` cannot be an installation's prefix, or None when it can."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        return 'must be 2 to 4 lowercase letters and digits, starting with a letter'
    if TAP_LIKE.match(prefix):
        return "cannot be 'r' followed by a hex digit (the names of instances' tap devices)"
    return None


@dataclasses.dataclass(frozen=True)
class HostNames:
    prefix: str = DEFAULT_PREFIX
    installation: str = ''          # the state directory

    @functools.cached_property
    def _digest(self):
        return installation_digest(self.installation)

    @property
    def _stem(self):
        return f'{self.prefix}{self._digest[:4]}'

    # -- this machine ----------------------------------------------------------------------------

    def bridge(self, network_key):
        """The bridge of a subnet that names none of its own."""
        return f'{self._stem}-{network_key}'

    def gateway_link(self, network_key):
        """The host end of the veth from a subnet's bridge to its VPC's router."""
        return f'{self._stem}g{network_key}'

    def uplink(self, vpc_key):
        """The host end of a VPC router's uplink, where its elastic IPs are routed."""
        return f'{self._stem}u{vpc_key}'

    def is_uplink(self, interface):
        return re.fullmatch(rf'{re.escape(self._stem)}u\d+', interface) is not None

    @property
    def namespaces(self):
        """What the names of the installation's router namespaces start with."""
        return f'{self.prefix}-{self._digest[:6]}-'

    @property
    def forward_chain(self):
        """The iptables chain in the host's FORWARD that keeps guests from being routed by the host."""
        return f'{self._stem.upper()}-FORWARD'

    # -- hypervisors -----------------------------------------------------------------------------

    def domain(self, instance_id):
        return f'{self.prefix}-{instance_id}'

    @property
    def storage_pool(self):
        """The libvirt storage pool of the installation's volumes on a host without shared storage,
        and its directory's name: the prefix alone, as domains, so every worker finds it."""
        return f'{self.prefix}-instances'

    def instance_of(self, domain_name):
        """The instance a domain of this installation runs, or None for anyone else's domain."""
        head = f'{self.prefix}-'
        return domain_name[len(head):] if domain_name.startswith(head) else None
