"""Virtual networks made real on this machine: a Linux bridge per network, isolation, elastic IP NAT.

- Each private network is one L2 segment: the bridge `rsv-<network id>` (or the bridge the network
  names), carrying the network's gateway address. With a VLAN id and an uplink configured
  ([compute] vlan_uplink), the uplink's VLAN subinterface joins the bridge, so the segment spans
  hosts; without an uplink the segment is local to this host.
- Networks are isolated from each other: routed traffic from one network's bridge to another's is
  dropped (filter chains RSV-FORWARD and RSV-ISOLATE), so it stays isolated even with forwarding on;
  only connections to an elastic IP cross, as they would from anywhere.
- Elastic IPs are NAT on the host: DNAT public → private for traffic arriving or sent from here, and
  SNAT private → public for what an instance sends out of its networks (nat chains RSV-DNAT and
  RSV-SNAT). The associated addresses are also local addresses of the bridge `rsv-eip` (no ports),
  so the host routes them and answers ARP for them on its uplink. Forwarding is turned on while
  any address is associated, since NAT needs routing.

The chains are rebuilt as a whole from the database (iptables-restore --noflush replaces exactly
those chains), so applying is idempotent and a removed network or association leaves no rule
behind. Only hosts on this machine (qemu:/// URIs) are set up; remote hosts are prepared by their
administrators with the same bridge names.
"""
import dataclasses
import ipaddress
import logging
import subprocess
import threading

from sqlalchemy import select

from ..drivers.base import DriverError
from ..models import Address as AddressRow, Instance as InstanceRow, Network as NetworkRow

log = logging.getLogger(__name__)

BRIDGE_PREFIX = 'rsv-'
PUBLIC_BRIDGE = 'rsv-eip'
FORWARD_CHAIN, ISOLATE_CHAIN = 'RSV-FORWARD', 'RSV-ISOLATE'
DNAT_CHAIN, SNAT_CHAIN = 'RSV-DNAT', 'RSV-SNAT'
# Built-in chains and the chain each jumps to first.
JUMPS = (('filter', 'FORWARD', FORWARD_CHAIN), ('nat', 'PREROUTING', DNAT_CHAIN),
         ('nat', 'OUTPUT', DNAT_CHAIN), ('nat', 'POSTROUTING', SNAT_CHAIN))
COMMAND_TIMEOUT_SECONDS = 30


class HostNetworkError(Exception):
    """A bridge or firewall rule could not be set up on the host."""


def bridge_name(network):
    """The host bridge of a network row: the one it names, else rsv-<id>."""
    return network.bridge or f'{BRIDGE_PREFIX}{network.id}'


def is_on_this_machine(uri):
    return uri.startswith('qemu:///')


@dataclasses.dataclass(frozen=True)
class Segment:
    """What a network needs on the host."""
    bridge: str
    cidr: str
    gateway: str | None
    vlan: int | None

    @classmethod
    def of(cls, network):
        return cls(bridge_name(network), network.cidr, network.gateway, network.vlan)

    @property
    def gateway_interface_address(self):
        prefix = ipaddress.IPv4Network(self.cidr).prefixlen
        return f'{self.gateway}/{prefix}'


@dataclasses.dataclass(frozen=True)
class Desired:
    """The whole firewall state: every private network and every elastic IP association."""
    segments: tuple                 # (Segment, …) sorted by bridge
    associations: tuple             # ((public_ip, private_ip), …) sorted


def filter_rules(segments):
    """iptables-restore lines for the filter table: no routing from one network to another."""
    lines = ['*filter', f':{FORWARD_CHAIN} - [0:0]', f':{ISOLATE_CHAIN} - [0:0]',
             # An elastic IP is public: reaching one (and its replies) crosses networks by design.
             f'-A {FORWARD_CHAIN} -m conntrack --ctstate DNAT -j RETURN']
    for segment in segments:
        # Within one network traffic is bridged, except hairpin routing (an instance reaching a
        # neighbour's elastic IP): that stays allowed.
        lines.append(f'-A {FORWARD_CHAIN} -i {segment.bridge} -o {segment.bridge} -j RETURN')
    for segment in segments:
        lines.append(f'-A {FORWARD_CHAIN} -i {segment.bridge} -j {ISOLATE_CHAIN}')
    for segment in segments:
        lines.append(f'-A {ISOLATE_CHAIN} -o {segment.bridge} -j DROP')
    lines.append('COMMIT')
    return lines


def nat_rules(segments, associations):
    """iptables-restore lines for the nat table: one DNAT and one SNAT rule per elastic IP."""
    lines = ['*nat', f':{DNAT_CHAIN} - [0:0]', f':{SNAT_CHAIN} - [0:0]']
    for public_ip, private_ip in associations:
        lines.append(f'-A {DNAT_CHAIN} -d {public_ip}/32 -j DNAT --to-destination {private_ip}')
    for segment in segments:
        # Between our own networks addresses stay private.
        lines.append(f'-A {SNAT_CHAIN} -d {segment.cidr} -j RETURN')
    for public_ip, private_ip in associations:
        lines.append(f'-A {SNAT_CHAIN} -s {private_ip}/32 -j SNAT --to-source {public_ip}')
    lines.append('COMMIT')
    return lines


def desired_state(session):
    """Read what the host must look like from the database."""
    networks = session.scalars(select(NetworkRow).where(NetworkRow.kind == 'private')).all()
    segments = tuple(sorted((Segment.of(network) for network in networks), key=lambda s: s.bridge))
    associations = tuple(sorted(session.execute(
        select(AddressRow.public_ip, InstanceRow.private_ip)
        .join(InstanceRow, InstanceRow.instance_id == AddressRow.instance_id)
        .where(InstanceRow.private_ip.is_not(None))).all()))
    return Desired(segments, tuple((public, private) for public, private in associations))


class HostNetwork:
    """Applies networks to this machine. `prefix` runs every command elsewhere (e.g. `ip netns exec NS`)."""

    def __init__(self, uplink=None, prefix=()):
        self.uplink = uplink or None
        self.prefix = tuple(prefix)
        self._ready = set()             # segments set up by this process
        self._applied = None            # the Desired state last applied
        self._last_error = None
        self._lock = threading.Lock()

    # -- bridges ---------------------------------------------------------------------------------

    def ensure_segment(self, nic):
        """Before a NIC joins its bridge on this machine (the libvirt driver asks, for local hosts
        only): the bridge exists, up, with the network's gateway."""
        if nic.bridge is None:
            return
        try:
            self._ensure(Segment(nic.bridge, nic.cidr, nic.gateway, nic.vlan))
        except HostNetworkError as error:
            raise DriverError(str(error)) from None

    def _ensure(self, segment):
        with self._lock:
            if segment in self._ready and self._exists(segment.bridge):
                return
            self._set_up(segment)
            self._ready.add(segment)

    def _set_up(self, segment):
        if not self._exists(segment.bridge):
            self._run('ip', 'link', 'add', segment.bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0')
        if segment.gateway:
            self._run('ip', 'addr', 'replace', segment.gateway_interface_address, 'dev', segment.bridge)
        self._run('ip', 'link', 'set', segment.bridge, 'up')
        if segment.vlan and self.uplink:
            self._attach_vlan(segment)

    def _attach_vlan(self, segment):
        subinterface = f'{self.uplink}.{segment.vlan}'
        if len(subinterface) > 15:
            raise HostNetworkError(f'VLAN interface name {subinterface} is longer than 15 characters')
        if not self._exists(subinterface):
            self._run('ip', 'link', 'add', 'link', self.uplink, 'name', subinterface, 'type', 'vlan',
                      'id', str(segment.vlan))
        self._run('ip', 'link', 'set', subinterface, 'master', segment.bridge, 'up')

    def _exists(self, interface):
        return subprocess.run([*self.prefix, 'ip', 'link', 'show', 'dev', interface], capture_output=True,
                              timeout=COMMAND_TIMEOUT_SECONDS).returncode == 0

    # -- firewall --------------------------------------------------------------------------------

    def reconcile(self, db, host_uris):
        """Bring the firewall to what the database says, if this process drives a host on this machine.

        Cheap when nothing changed (one query); called at every dispatch round and so right after
        every association change and at worker start.
        """
        if not any(is_on_this_machine(uri) for uri in host_uris):
            return False
        with db.read() as session:
            desired = desired_state(session)
        with self._lock:
            if desired == self._applied:
                return False
            try:
                self.apply(desired)
            except HostNetworkError as error:
                if str(error) != self._last_error:   # retried every round: say it once
                    log.warning('cannot apply networks and elastic IPs on this host: %s', error)
                    self._last_error = str(error)
                return False
            self._applied, self._last_error = desired, None
        return True

    def apply(self, desired):
        rules = filter_rules(desired.segments) + nat_rules(desired.segments, desired.associations)
        self._run('iptables-restore', '--noflush', input='\n'.join(rules) + '\n')
        for table, chain, target in JUMPS:
            if not self._succeeds('iptables', '-t', table, '-C', chain, '-j', target):
                self._run('iptables', '-t', table, '-I', chain, '1', '-j', target)
        self._sync_public_addresses({public for public, _ in desired.associations})
        if desired.associations:
            self._enable_forwarding()

    def _sync_public_addresses(self, wanted):
        """Exactly the associated elastic IPs as /32 addresses of the public bridge."""
        if not wanted and not self._exists(PUBLIC_BRIDGE):
            return
        if not self._exists(PUBLIC_BRIDGE):
            self._run('ip', 'link', 'add', PUBLIC_BRIDGE, 'type', 'bridge')
        self._run('ip', 'link', 'set', PUBLIC_BRIDGE, 'up')
        present = set(self._addresses(PUBLIC_BRIDGE))
        for address in sorted(wanted - present):
            self._run('ip', 'addr', 'add', f'{address}/32', 'dev', PUBLIC_BRIDGE)
        for address in sorted(present - wanted):
            self._run('ip', 'addr', 'del', f'{address}/32', 'dev', PUBLIC_BRIDGE)

    def _addresses(self, interface):
        listing = self._run('ip', '-o', '-4', 'addr', 'show', 'dev', interface)
        return [line.split()[3].split('/')[0] for line in listing.splitlines() if ' inet ' in line]

    def _enable_forwarding(self):
        self._run('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')

    # -- commands --------------------------------------------------------------------------------

    def _succeeds(self, *command):
        return subprocess.run([*self.prefix, *command], capture_output=True,
                              timeout=COMMAND_TIMEOUT_SECONDS).returncode == 0

    def _run(self, *command, input=None):
        try:
            return subprocess.run([*self.prefix, *command], input=input, capture_output=True, text=True,
                                  check=True, timeout=COMMAND_TIMEOUT_SECONDS).stdout
        except subprocess.CalledProcessError as error:
            detail = (error.stderr or error.stdout or '').strip().splitlines()[-1:] or ['']
            raise HostNetworkError(f"{' '.join(command[:4])} failed: {detail[0]}") from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise HostNetworkError(f"{command[0]}: {error}") from None
