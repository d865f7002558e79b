"""Virtual networks made real on this machine: a bridge per subnet, a router namespace per VPC, NAT.

Every name starts with the installation's prefix (`host_names`; `rsv…` below), so installations
can share the machine.

- Each subnet is one L2 segment: the bridge `rsv…-<network id>` (or the bridge the network names),
  with no address on the host. With a VLAN id and an uplink configured ([compute] vlan_uplink), the
  uplink's VLAN subinterface joins the bridge, so the segment spans hosts.
- Each VPC has a router: a network namespace of its own (`rsv-<installation>-<vpc id>`). A veth pair
  per subnet joins the subnet's bridge (host end `rsv…g<network id>`) to the router (end
  `g<network id>`), which holds the subnet's gateway address and routes between the VPC's subnets.
  Nothing else joins two VPCs, so VPCs may use the same addresses; the host itself has no address in
  any subnet, and its filter table drops whatever a guest tries to route through it.
- Elastic IPs live in their VPC's router: its uplink veth (host end `rsv…u<vpc key>`, router end
  `up0`) holds the VPC's associated public addresses; the router DNATs each to its private address
  and SNATs what that address sends out. The host routes each public address to the router's uplink
  and answers the router's ARP for everything else (proxy ARP), so public traffic flows both ways.
  Those routes carry protocol number 98; the uplink they go through says whose they are.

Everything is rebuilt from the database (`reconcile`), so applying is idempotent: a removed
association leaves no rule or address, and a VPC without instances here loses its router. Only hosts
on this machine (qemu:/// URIs) are set up; remote hosts are prepared by their administrators.
"""
import dataclasses
import hashlib
import ipaddress
import logging
import re
import subprocess
import threading

from sqlalchemy import select

from ..drivers.base import DriverError
from ..host_names import DEFAULT_PREFIX, INTERFACE_NAME_LIMIT, HostNames, installation_digest
from ..models import (Address as AddressRow, InternetGateway as GatewayRow, Lease, Network as NetworkRow,
                      NetworkInterface as InterfaceRow, Vpc as VpcRow)

log = logging.getLogger(__name__)

ROUTER_UPLINK = 'up0'
# Routes to elastic IPs carry this protocol number, so stale ones can be found and removed. The
# protocol is one byte, too few values to give each installation its own: the route's device (an
# uplink of the installation's) tells them apart.
ROUTE_PROTOCOL = '98'
# Rules an earlier version kept on the host itself (NAT there, isolation by chains, and the filter
# chain before it carried the installation's prefix): removed once.
LEGACY_CHAINS = (('filter', 'FORWARD', 'RSV-ISOLATE'), ('nat', 'PREROUTING', 'RSV-DNAT'),
                 ('nat', 'OUTPUT', 'RSV-DNAT'), ('nat', 'POSTROUTING', 'RSV-SNAT'),
                 ('filter', 'FORWARD', 'RSV-FORWARD'))
LEGACY_PUBLIC_BRIDGE = 'rsv-eip'
# Bridges (rsv-<network>) and veths (rsv-g<network>, rsv-u<vpc>) named before names carried the
# installation's prefix: their ports move to the new bridges, then they are removed once.
LEGACY_LINK = re.compile(r'rsv-([gu]?)(\d+)')
COMMAND_TIMEOUT_SECONDS = 30


class HostNetworkError(Exception):
    """A bridge, router or firewall rule could not be set up on the host."""


def bridge_name(network, names=None):
    """The host bridge of a network row: the one it names, else the installation's bridge for it
    (None without `names`: the host driver names it, from the NIC's network key)."""
    if network.bridge or names is None:
        return network.bridge
    return names.bridge(network.id)


def namespace_prefix(home, prefix=DEFAULT_PREFIX):
    """The prefix of this installation's router namespaces (namespace names are machine-wide)."""
    return HostNames(prefix, str(home)).namespaces


def tap_prefix(installation):
    """What the tap of every port of an installation starts with: 'r' and 3 hex digits."""
    return 'r' + installation_digest(installation)[:3]


def tap_name(installation, attachment_id, generation=0):
    """The tap device of an attached interface: stable, unique per installation and attachment, 15
    characters (the kernel's limit), so the firewall knows a port by name before it exists. Each move
    of its instance gives the next generation's name: two hosts of one machine hold both taps for a
    moment while a guest moves between them."""
    key = f'{installation}/{attachment_id}' + (f'/{generation}' if generation else '')
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f'{tap_prefix(installation)}{digest[:11]}'


def _check_length(interface):
    if len(interface) > INTERFACE_NAME_LIMIT:
        raise HostNetworkError(f'interface name {interface} is longer than {INTERFACE_NAME_LIMIT} characters')


def is_on_this_machine(uri):
    """A host whose guests join this machine's bridges: the local QEMU drivers, and libvirt daemons
    reached through a local socket (another daemon of this machine)."""
    return uri.startswith(('qemu:///', 'qemu+unix:///'))


@dataclasses.dataclass(frozen=True)
class Segment:
    """What one subnet needs on the host: its bridge, and its gateway in its VPC's router."""
    network_key: int
    bridge: str
    cidr: str
    gateway: str | None
    vlan: int | None
    host_link: str              # the host end of the veth to the VPC's router

    @classmethod
    def of(cls, network, names):
        return cls(network.id, bridge_name(network, names), network.cidr, network.gateway, network.vlan,
                   names.gateway_link(network.id))

    @property
    def router_link(self):
        return f'g{self.network_key}'

    @property
    def gateway_interface_address(self):
        prefix = ipaddress.IPv4Network(self.cidr).prefixlen
        return f'{self.gateway}/{prefix}'


@dataclasses.dataclass(frozen=True)
class Router:
    """One VPC's router: its subnets and its elastic IP associations ((public, private), …)."""
    vpc_key: int
    vpc_id: str
    segments: tuple
    associations: tuple


@dataclasses.dataclass(frozen=True)
class Desired:
    """The whole state: the routers of every VPC with instances here."""
    routers: tuple


def filter_rules(segments, chain):
    """iptables-restore lines for the installation's chain of the host's filter table: frames bridged
    within a subnet pass; nothing a guest sends is routed by the host itself."""
    lines = ['*filter', f':{chain} - [0:0]']
    for segment in segments:
        lines.append(f'-A {chain} -i {segment.bridge} -o {segment.bridge} -j RETURN')
    for segment in segments:
        lines.append(f'-A {chain} -i {segment.bridge} -j DROP')
    lines.append('COMMIT')
    return lines


def router_rules(router):
    """iptables-restore lines for a router (the namespace is ours alone: whole tables). Only
    associated addresses reach past the uplink, as only instances with a public address reach
    outside a VPC; from outside, only connections to an elastic IP come in."""
    lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]',
             f'-A FORWARD -i {ROUTER_UPLINK} -m conntrack --ctstate DNAT -j ACCEPT',
             f'-A FORWARD -o {ROUTER_UPLINK} -m conntrack --ctstate DNAT -j ACCEPT']
    for _public_ip, private_ip in router.associations:
        lines.append(f'-A FORWARD -o {ROUTER_UPLINK} -s {private_ip}/32 -j ACCEPT')
        lines.append(f'-A FORWARD -i {ROUTER_UPLINK} -d {private_ip}/32 -m conntrack --ctstate ESTABLISHED,RELATED '
                     '-j ACCEPT')
    lines += [f'-A FORWARD -i {ROUTER_UPLINK} -j DROP', f'-A FORWARD -o {ROUTER_UPLINK} -j DROP', 'COMMIT',
              '*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]',
              ':POSTROUTING ACCEPT [0:0]']
    for public_ip, private_ip in router.associations:
        lines.append(f'-A PREROUTING -d {public_ip}/32 -j DNAT --to-destination {private_ip}')
    for public_ip, private_ip in router.associations:
        lines.append(f'-A POSTROUTING -o {ROUTER_UPLINK} -s {private_ip}/32 -j SNAT --to-source {public_ip}')
    lines.append('COMMIT')
    return lines


def desired_state(session, names):
    """Read from the database what the host must look like: a router for every VPC holding leases."""
    vpcs = session.execute(select(VpcRow.id, VpcRow.vpc_id).where(
        VpcRow.id.in_(select(NetworkRow.vpc_pk).join(Lease, Lease.network_id == NetworkRow.id)))).all()
    keys = [key for key, _ in vpcs]
    segments = {}
    for network in session.scalars(select(NetworkRow).where(NetworkRow.vpc_pk.in_(keys))):
        segments.setdefault(network.vpc_pk, []).append(Segment.of(network, names))
    associations = {}
    # Only a VPC routed to an attached internet gateway translates its elastic IPs.
    for vpc_key, public_ip, private_ip in session.execute(
            select(NetworkRow.vpc_pk, AddressRow.public_ip, AddressRow.private_ip)
            .join(InterfaceRow, InterfaceRow.interface_id == AddressRow.interface_id)
            .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
            .join(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
            .join(GatewayRow, GatewayRow.vpc_pk == VpcRow.id)
            .where(NetworkRow.vpc_pk.in_(keys), VpcRow.internet_route.is_(True))):
        associations.setdefault(vpc_key, []).append((public_ip, private_ip))
    return Desired(tuple(Router(key, vpc_id, tuple(sorted(segments.get(key, ()), key=lambda s: s.network_key)),
                                tuple(sorted(associations.get(key, ()))))
                         for key, vpc_id in sorted(vpcs)))


class HostNetwork:
    """Applies networks to this machine, naming what it makes by `names` (the installation's
    HostNames). `prefix` runs every command elsewhere (e.g. `ip netns exec NS`)."""

    def __init__(self, uplink=None, prefix=(), names=HostNames()):
        self.uplink = uplink or None
        self.prefix = tuple(prefix)
        self.names = names
        self.namespaces = names.namespaces  # the start of this installation's router namespace names
        self._ready = set()                 # (segment, router namespace) set up by this process
        self._applied = None                # the Desired state last applied
        self._legacy_removed = False
        self._last_error = None
        self._lock = threading.Lock()

    def router_namespace(self, vpc_id):
        return f'{self.namespaces}{vpc_id}'

    # -- segments: what a NIC needs before it joins its bridge -------------------------------------

    def ensure_segment(self, nic):
        """Before a NIC joins its bridge on this machine (the libvirt driver asks, for local hosts
        only): the bridge exists, up, linked to its VPC's router, which holds the gateway."""
        if nic.bridge is None:
            return
        segment = Segment(nic.network_key, nic.bridge, nic.cidr, nic.gateway, nic.vlan,
                          self.names.gateway_link(nic.network_key))
        try:
            with self._lock:
                namespace = self.router_namespace(nic.vpc_id) if nic.vpc_id else None
                if (segment, namespace) in self._ready and self._exists(segment.bridge):
                    return
                self._set_up_bridge(segment)
                if namespace is not None:
                    self._set_up_router(namespace, nic.vpc_key)
                    self._link_to_router(segment, namespace)
                self._ready.add((segment, namespace))
        except HostNetworkError as error:
            raise DriverError(str(error)) from None

    def _set_up_bridge(self, segment):
        _check_length(segment.bridge)
        if not self._exists(segment.bridge):
            self._run('ip', 'link', 'add', segment.bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0')
        # The gateway lives in the router now; an address an earlier version put here must go.
        self._run('ip', 'addr', 'flush', 'dev', segment.bridge)
        self._run('ip', 'link', 'set', segment.bridge, 'up')
        if segment.vlan and self.uplink:
            self._attach_vlan(segment)

    def _set_up_router(self, namespace, vpc_key):
        if namespace in self._namespaces() and not self._usable(namespace):
            # A name left by a process that died with the mount behind it: the router is gone.
            self._run_here('ip', 'netns', 'del', namespace)
        if namespace not in self._namespaces():
            self._run_here('ip', 'netns', 'add', namespace)
        inside = ('ip', 'netns', 'exec', namespace)
        self._run(*inside, 'ip', 'link', 'set', 'lo', 'up')
        self._run(*inside, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
        host_uplink = self.names.uplink(vpc_key)
        self._ensure_veth(host_uplink, ROUTER_UPLINK, namespace)
        self._run('sysctl', '-q', '-w', f'net.ipv4.conf.{host_uplink}.proxy_arp=1')
        self._run('ip', 'link', 'set', host_uplink, 'up')
        self._run(*inside, 'ip', 'link', 'set', ROUTER_UPLINK, 'up')
        self._run(*inside, 'ip', 'route', 'replace', 'default', 'dev', ROUTER_UPLINK)

    def _link_to_router(self, segment, namespace):
        inside = ('ip', 'netns', 'exec', namespace)
        self._ensure_veth(segment.host_link, segment.router_link, namespace)
        self._run('ip', 'link', 'set', segment.host_link, 'master', segment.bridge, 'up')
        if segment.gateway:
            self._run(*inside, 'ip', 'addr', 'replace', segment.gateway_interface_address, 'dev', segment.router_link)
        self._run(*inside, 'ip', 'link', 'set', segment.router_link, 'up')

    def _ensure_veth(self, host_end, router_end, namespace):
        """A veth pair from this machine into a router. The kernel destroys a deleted namespace's
        interfaces in the background, so a host end may outlive its router for a moment: a pair
        missing its router end is made anew. A router end whose host end has another name (one an
        earlier version gave it) goes with it."""
        inside = ('ip', 'netns', 'exec', namespace)
        _check_length(host_end)
        if self._exists(host_end):
            if self._succeeds(*inside, 'ip', 'link', 'show', 'dev', router_end):
                return
            self._succeeds('ip', 'link', 'del', host_end)     # gone by itself meanwhile is as good
        else:
            self._succeeds(*inside, 'ip', 'link', 'del', router_end)
        self._run('ip', 'link', 'add', host_end, 'type', 'veth', 'peer', 'name', router_end, 'netns', namespace)

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

    def _usable(self, namespace):
        return subprocess.run(['ip', 'netns', 'exec', namespace, 'true'], capture_output=True,
                              timeout=COMMAND_TIMEOUT_SECONDS).returncode == 0

    def _namespaces(self):
        return {line.split()[0] for line in self._run_here('ip', 'netns', 'list').splitlines() if line.strip()}

    # -- the whole state -----------------------------------------------------------------------------

    def reconcile(self, db, host_uris):
        """Bring routers, NAT and the firewall to what the database says, if this process drives a
        host on this machine. Cheap when nothing changed (a few queries); called at every dispatch
        round, so right after every association change and at worker start."""
        if not any(is_on_this_machine(uri) for uri in host_uris):
            return False
        with db.read() as session:
            desired = desired_state(session, self.names)
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
        if not self._legacy_removed:
            self._remove_legacy_rules()
        segments = [segment for router in desired.routers for segment in router.segments]
        for router in desired.routers:
            namespace = self.router_namespace(router.vpc_id)
            self._set_up_router(namespace, router.vpc_key)
            for segment in router.segments:
                self._set_up_bridge(segment)
                self._link_to_router(segment, namespace)
            self._apply_router_rules(namespace, router)
        if not self._legacy_removed:
            self._remove_legacy_links(keep={segment.bridge for segment in segments})
            self._legacy_removed = True
        chain = self.names.forward_chain
        self._run('iptables-restore', '--noflush', input='\n'.join(filter_rules(segments, chain)) + '\n')
        if not self._succeeds('iptables', '-C', 'FORWARD', '-j', chain):
            self._run('iptables', '-I', 'FORWARD', '1', '-j', chain)
        self._sync_public_routes({public: self.names.uplink(router.vpc_key) for router in desired.routers
                                  for public, _ in router.associations})
        if any(router.associations for router in desired.routers):
            self._run('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
        self._remove_routers_except({self.router_namespace(router.vpc_id) for router in desired.routers})

    def _apply_router_rules(self, namespace, router):
        inside = ('ip', 'netns', 'exec', namespace)
        self._run(*inside, 'iptables-restore', input='\n'.join(router_rules(router)) + '\n')
        wanted = {public for public, _ in router.associations}
        present = set(self._addresses(ROUTER_UPLINK, inside))
        for address in sorted(wanted - present):
            self._run(*inside, 'ip', 'addr', 'add', f'{address}/32', 'dev', ROUTER_UPLINK)
        for address in sorted(present - wanted):
            self._run(*inside, 'ip', 'addr', 'del', f'{address}/32', 'dev', ROUTER_UPLINK)

    def _sync_public_routes(self, wanted):
        """Exactly the associated elastic IPs routed, each to its router's uplink. Routes through
        another installation's uplinks are left alone; an address one of them routes already is not
        taken over (their pools overlap), and said so."""
        present, elsewhere = {}, {}
        for line in self._run('ip', '-4', 'route', 'show', 'proto', ROUTE_PROTOCOL).splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == 'dev':
                mine = self.names.is_uplink(parts[2])
                (present if mine else elsewhere)[parts[0].split('/')[0]] = parts[2]
        for address, uplink in sorted(wanted.items()):
            if address in elsewhere:
                log.warning('elastic IP %s is routed to %s, not a link of this installation: another '
                            'installation on this machine hands out the same address ([compute] public_pool)',
                            address, elsewhere[address])
            elif present.get(address) != uplink:
                self._run('ip', 'route', 'replace', f'{address}/32', 'dev', uplink, 'proto', ROUTE_PROTOCOL)
        for address in sorted(set(present) - set(wanted)):
            self._run('ip', 'route', 'del', f'{address}/32', 'dev', present[address], 'proto', ROUTE_PROTOCOL)

    def _remove_routers_except(self, wanted):
        for namespace in sorted(self._namespaces()):
            if namespace.startswith(self.namespaces) and namespace not in wanted:
                self._run_here('ip', 'netns', 'del', namespace)
                self._ready = {(segment, ns) for segment, ns in self._ready if ns != namespace}

    def _remove_legacy_rules(self):
        for table, chain, target in LEGACY_CHAINS:
            while self._succeeds('iptables', '-t', table, '-D', chain, '-j', target):
                pass
            if self._succeeds('iptables', '-t', table, '-F', target):
                self._succeeds('iptables', '-t', table, '-X', target)
        if self._exists(LEGACY_PUBLIC_BRIDGE):
            self._run('ip', 'link', 'del', LEGACY_PUBLIC_BRIDGE)

    def _remove_legacy_links(self, keep):
        """Bridges and veths with the names of an earlier version (but for bridges a network names
        itself, in `keep`). The taps of instances still running on an old bridge move to the
        network's bridge first, so their traffic goes on; a veth's routes go with it."""
        for link in self._links():
            found = LEGACY_LINK.fullmatch(link)
            if found is None or link in keep:
                continue
            kind, key = found.groups()
            if kind == '':
                self._move_ports(link, self.names.bridge(key))
            self._succeeds('ip', 'link', 'del', link)

    def _move_ports(self, old_bridge, new_bridge):
        if not self._exists(new_bridge):
            return
        for port in self._links('master', old_bridge):
            self._succeeds('ip', 'link', 'set', port, 'master', new_bridge)

    def _links(self, *selector):
        listing = self._run('ip', '-o', 'link', 'show', *selector)
        return [line.split(':')[1].strip().split('@')[0] for line in listing.splitlines() if ':' in line]

    def _addresses(self, interface, inside=()):
        listing = self._run(*inside, 'ip', '-o', '-4', 'addr', 'show', 'dev', interface)
        return [line.split()[3].split('/')[0] for line in listing.splitlines() if ' inet ' in line]

    # -- commands --------------------------------------------------------------------------------

    def _succeeds(self, *command):
        return subprocess.run([*self.prefix, *command], capture_output=True,
                              timeout=COMMAND_TIMEOUT_SECONDS).returncode == 0

    def _run_here(self, *command):
        # Named namespaces are machine-wide: made, listed and removed without the prefix, as a
        # prefix's `ip netns exec` would keep the new name in a mount namespace of its own.
        return self._run(*command, prefix=())

    def _run(self, *command, input=None, prefix=None):
        prefix = self.prefix if prefix is None else prefix
        try:
            return subprocess.run([*prefix, *command], input=input, capture_output=True, text=True,
                                  check=True, timeout=COMMAND_TIMEOUT_SECONDS).stdout
        except subprocess.CalledProcessError as error:
            detail = (error.stderr or error.stdout or '').strip().splitlines()[-1:] or ['']
            raise HostNetworkError(f"{' '.join(command[:6])} failed: {detail[0]}") from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise HostNetworkError(f"{command[0]}: {error}") from None
