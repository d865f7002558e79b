"""A security `Policy` as nftables objects, and the smallest nft script that changes one into another.

Two tables per installation, both named after it:

- `inet` (stateful, where connection tracking works on this kernel through br_netfilter): traffic
  bridged on the installation's segments is filtered here. Established and related traffic passes
  first. A packet from a port's address is checked against the egress rules of the port's groups,
  then a packet to a port's address against their ingress rules; a port with no allowing rule drops
  it. Each segment tracks connections in a zone of its own, so VPCs that reuse addresses never share
  a connection.
- `bridge` (stateless, where frames still carry their port): anti-spoofing. A port sends only from
  its MAC and its leased addresses (any address when its source/destination check is off), a tap of
  this installation that is not a known port sends nothing, and a router port never sends from its
  subnet's addresses other than its gateway.

Groups are chains (`g-<id>-in`, `g-<id>-out`); ports with the same groups share one chain pair
(`s-<digest>-in/out`) that jumps to each; a port's addresses lead to its pair through verdict maps;
groups that rules name as peers are address sets (`m-<id>`). A rule change rewrites one group's
chain, a membership change adds or removes set and map elements: nothing else is touched.
"""
import dataclasses
import hashlib

from .security_policy import ANYWHERE

ELEMENTS_PER_STATEMENT = 500


@dataclasses.dataclass(frozen=True)
class NftSet:
    declaration: str            # 'type ifname . ipv4_addr : verdict;'
    elements: frozenset
    kind: str = 'set'           # 'set' or 'map'


@dataclasses.dataclass(frozen=True)
class Chain:
    rules: tuple
    header: str = ''            # a base chain's hook: 'type filter hook forward priority filter; policy accept;'


@dataclasses.dataclass(frozen=True)
class Table:
    family: str
    name: str
    sets: dict
    chains: dict

    def counts(self):
        """What a listing of the kernel's copy must show: rules per chain, elements per set."""
        return ({name: len(chain.rules) for name, chain in self.chains.items()},
                {name: len(found.elements) for name, found in self.sets.items()})


def tables(policy, name, tap_prefix):
    """The (inet, bridge) Tables enforcing `policy`."""
    return inet_table(policy, name), bridge_table(policy, name, tap_prefix)


# -- the stateful table ----------------------------------------------------------------------------

def inet_table(policy, name):
    sets = {'bridges': NftSet('type ifname;', frozenset(_quoted(s.bridge) for s in policy.segments))}
    egress, ingress = set(), set()
    chains = {
        'prerouting': Chain(('iifname @bridges jump zones',),
                            'type filter hook prerouting priority raw; policy accept;'),
        'zones': Chain(tuple(f'iifname {_quoted(s.bridge)} ct zone set {s.zone}' for s in policy.segments)),
        'forward': Chain(('iifname != @bridges accept', 'ct state established,related accept',
                          'ct state invalid drop', 'iifname . ip saddr vmap @egress_of', 'goto to_port'),
                         'type filter hook forward priority filter; policy accept;'),
        'to_port': Chain(('oifname . ip daddr vmap @ingress_of', 'accept')),
    }
    for port in policy.ports:
        pair = group_set_chain(port.groups)
        if f'{pair}-in' not in chains:
            chains[f'{pair}-in'] = Chain(tuple(f'jump g-{group}-in' for group in port.groups) + ('drop',))
            chains[f'{pair}-out'] = Chain(tuple(f'jump g-{group}-out' for group in port.groups) + ('drop',))
        for address in port.addresses:
            key = f'{_quoted(port.bridge)} . {address}'
            egress.add(f'{key} : jump {pair}-out')
            ingress.add(f'{key} : jump {pair}-in')
    sets['egress_of'] = NftSet('type ifname . ipv4_addr : verdict;', frozenset(egress), 'map')
    sets['ingress_of'] = NftSet('type ifname . ipv4_addr : verdict;', frozenset(ingress), 'map')
    for group in policy.groups:
        chains[f'g-{group.group_id}-in'] = Chain(_rules(group.ingress, 'ip saddr', 'accept'))
        chains[f'g-{group.group_id}-out'] = Chain(_rules(group.egress, 'ip daddr', 'goto to_port'))
    for group_id, addresses in policy.members:
        sets[f'm-{group_id}'] = NftSet('type ipv4_addr;', frozenset(addresses))
    return Table('inet', name, sets, chains)


def group_set_chain(groups):
    """The name (without -in/-out) of the chain pair for ports in exactly these groups."""
    return 's-' + hashlib.sha256(','.join(groups).encode()).hexdigest()[:12]


def _rules(permissions, peer_field, verdict):
    rules = []
    for permission in permissions:
        traffic = _traffic(permission)
        if permission.cidrs == (str(ANYWHERE),):
            rules.append(_join(traffic, verdict))
        elif permission.cidrs:
            rules.append(_join(f"{peer_field} {{ {', '.join(permission.cidrs)} }}", traffic, verdict))
        for peer in permission.peer_groups:
            rules.append(_join(f'{peer_field} @m-{peer}', traffic, verdict))
    return tuple(rules)


def _traffic(permission):
    """The protocol and ports part of a rule ('' for all traffic)."""
    protocol, low, high = permission.protocol, permission.from_port, permission.to_port
    if protocol in ('tcp', 'udp'):
        if low is None or (low, high) == (0, 65535) or low == -1:
            return f'meta l4proto {protocol}'
        return f'{protocol} dport {low}' if low == high else f'{protocol} dport {low}-{high}'
    if protocol == 'icmp':
        if low is None or low == -1:
            return 'meta l4proto icmp'
        return f'icmp type {low}' + ('' if high is None or high == -1 else f' icmp code {high}')
    if protocol == '-1':
        return ''
    return f'meta l4proto {int(protocol)}'


def _join(*parts):
    return ' '.join(part for part in parts if part)


# -- the anti-spoofing table -----------------------------------------------------------------------

def bridge_table(policy, name, tap_prefix):
    ports = [port for port in policy.ports]
    sets = {
        'ports': NftSet('type ifname;', frozenset(_quoted(port.tap) for port in ports)),
        'port_macs': NftSet('type ifname . ether_addr;', frozenset(f'{_quoted(p.tap)} . {p.mac}' for p in ports)),
        'port_ips': NftSet('type ifname . ipv4_addr;', frozenset(
            f'{_quoted(p.tap)} . {address}' for p in ports if p.source_dest_check for address in p.addresses)),
        'free_ports': NftSet('type ifname;', frozenset(_quoted(p.tap) for p in ports if not p.source_dest_check)),
    }
    chains = {
        'prerouting': Chain((f'iifname "{tap_prefix}*" iifname != @ports drop', 'iifname @ports jump from_port',
                             'jump from_router'),
                            'type filter hook prerouting priority -300; policy accept;'),
        'from_port': Chain(('iifname . ether saddr != @port_macs drop',
                            'ether type arp iifname . arp saddr ether != @port_macs drop',
                            'iifname @free_ports accept',
                            'ether type arp iifname . arp saddr ip @port_ips accept',
                            'ether type arp arp saddr ip 0.0.0.0 accept',
                            'ether type ip iifname . ip saddr @port_ips accept',
                            'drop')),
        'from_router': Chain(tuple(_router_rule(segment) for segment in policy.segments)),
    }
    return Table('bridge', name, sets, chains)


def _router_rule(segment):
    keep = f' ip saddr != {segment.gateway}' if segment.gateway else ''
    return f'iifname {_quoted(segment.router_link)} ether type ip ip saddr {segment.cidr}{keep} drop'


def _quoted(interface):
    if not interface or len(interface) > 15 or any(not (c.isalnum() or c in '-_.') for c in interface):
        raise ValueError(f'not an interface name: {interface!r}')
    return f'"{interface}"'


# -- scripts ---------------------------------------------------------------------------------------

def full_script(table):
    """Replace the table as a whole, in one transaction."""
    prefix = f'{table.family} {table.name}'
    return '\n'.join([f'add table {prefix}', f'delete table {prefix}', f'add table {prefix}',
                      *_changes(None, table)]) + '\n'


def change_script(old, new):
    """The statements that turn table `old` (as applied) into `new`; '' when they are equal. A set
    whose type or a base chain whose hook changed needs `full_script` (None is returned)."""
    for name in old.sets.keys() & new.sets.keys():
        if (old.sets[name].declaration, old.sets[name].kind) != (new.sets[name].declaration, new.sets[name].kind):
            return None
    for name in old.chains.keys() & new.chains.keys():
        if old.chains[name].header != new.chains[name].header:
            return None
    statements = _changes(old, new)
    return '\n'.join(statements) + '\n' if statements else ''


def _changes(old, new):
    prefix = f'{new.family} {new.name}'
    old_sets = old.sets if old else {}
    old_chains = old.chains if old else {}
    lines = []
    for name in sorted(new.sets.keys() - old_sets.keys()):
        lines.append(f'add {new.sets[name].kind} {prefix} {name} {{ {new.sets[name].declaration} }}')
    for name in sorted(new.chains.keys() - old_chains.keys()):
        header = new.chains[name].header
        lines.append(f'add chain {prefix} {name}' + (f' {{ {header} }}' if header else ''))
    for name in sorted(new.sets.keys() & old_sets.keys()):
        # Gone elements first: a map key whose verdict changed is removed here and added anew below.
        lines += _elements('delete', prefix, name,
                           {_key(element) for element in old_sets[name].elements - new.sets[name].elements})
    for name in sorted(new.sets):
        was = old_sets[name].elements if name in old_sets else frozenset()
        lines += _elements('add', prefix, name, new.sets[name].elements - was)
    for name in sorted(new.chains):
        if name in old_chains and old_chains[name].rules == new.chains[name].rules:
            continue
        if name in old_chains:
            lines.append(f'flush chain {prefix} {name}')
        lines += [f'add rule {prefix} {name} {rule}' for rule in new.chains[name].rules]
    gone = sorted(old_chains.keys() - new.chains.keys())
    lines += [f'flush chain {prefix} {name}' for name in gone]
    lines += [f'delete chain {prefix} {name}' for name in gone]
    for name in sorted(old_sets.keys() - new.sets.keys()):
        lines.append(f'delete {old_sets[name].kind} {prefix} {name}')
    return lines


def _key(element):
    """A map element's key (a set element is all key)."""
    return element.split(' : ', 1)[0]


def _elements(verb, prefix, name, elements):
    ordered = sorted(elements)
    return [f"{verb} element {prefix} {name} {{ {', '.join(ordered[start:start + ELEMENTS_PER_STATEMENT])} }}"
            for start in range(0, len(ordered), ELEMENTS_PER_STATEMENT)]
