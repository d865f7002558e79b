"""What security groups ask of one machine's firewall, read from the database as plain values.

The firewall of a machine guards the ports (network interfaces attached to instances) of the hosts it
carries. For each port it needs the segment it sits on, its MAC and leased addresses (anti-spoofing)
and its groups; for each of those groups, its rules; for each group a rule names as its peer, the
addresses of that group's members, wherever they run. `nft_ruleset` turns a `Policy` into nftables
objects; nothing here knows about nftables.
"""
import dataclasses
import ipaddress

from sqlalchemy import or_, select

from ..lifecycle import State
from ..models import (Instance as InstanceRow, InterfaceGroup, Lease, Network as NetworkRow,
                      NetworkInterface as InterfaceRow, SecurityGroupRule as RuleRow)
from ..host_names import HostNames
from . import addressing
from .host_network import Segment as HostSegment, tap_name

ANYWHERE = ipaddress.IPv4Network('0.0.0.0/0')
# Attached or on their way in or out: the domain has (or is about to have) the NIC.
PLUGGED = ('attaching', 'attached', 'detaching')


@dataclasses.dataclass(frozen=True)
class Segment:
    """A subnet's bridge on this machine, the router port on it, and its own addresses."""
    bridge: str
    router_link: str
    cidr: str
    gateway: str | None
    zone: int                   # conntrack zone: connections on two bridges never mix

    @classmethod
    def of(cls, network, names):
        host = HostSegment.of(network, names)
        return cls(host.bridge, host.host_link, network.cidr, network.gateway, 1 + (network.id - 1) % 65535)


@dataclasses.dataclass(frozen=True)
class Port:
    """One attached interface: where it is, what it may send from, which groups guard it."""
    interface_id: str
    tap: str
    bridge: str
    mac: str
    addresses: tuple            # leased IPv4 addresses, primary first
    source_dest_check: bool     # False: it may forward others' traffic (a NAT instance)
    groups: tuple               # group ids, sorted


@dataclasses.dataclass(frozen=True)
class Permission:
    """Rules of one group, direction, protocol and port range, merged: every CIDR peer and every
    group peer they name."""
    protocol: str               # 'tcp', 'udp', 'icmp', '-1' or a protocol number
    from_port: int | None       # ports, or ICMP type; None or -1 for all
    to_port: int | None         # ports, or ICMP code
    cidrs: tuple                # collapsed CIDR blocks (('0.0.0.0/0',) for anywhere)
    peer_groups: tuple          # group ids


@dataclasses.dataclass(frozen=True)
class GroupPolicy:
    group_id: str
    ingress: tuple              # (Permission, …)
    egress: tuple


@dataclasses.dataclass(frozen=True)
class Policy:
    segments: tuple             # (Segment, …) by bridge
    ports: tuple                # (Port, …) by tap
    groups: tuple               # (GroupPolicy, …) of the ports' groups, by id
    members: tuple              # ((group id, (address, …)), …) of every group a rule names as peer


EMPTY = Policy((), (), (), ())


def desired_policy(session, host_ids, installation, names=None):
    """The Policy of the ports of instances on `host_ids`, together. `names`: the installation's
    HostNames (its default prefix unless given)."""
    if not host_ids:
        return EMPTY
    names = names or HostNames(installation=str(installation))
    return _policies(session, host_ids, installation, names, lambda _host_id: 'all').get('all', EMPTY)


def policies_by_host(session, host_ids, installation, names=None):
    """{host id: Policy of that host's ports}, read in one pass (a worker may drive many hosts)."""
    names = names or HostNames(installation=str(installation))
    found = _policies(session, host_ids, installation, names, lambda host_id: host_id) if host_ids else {}
    return {host_id: found.get(host_id, EMPTY) for host_id in host_ids}


def _policies(session, host_ids, installation, names, key_of):
    """{key: Policy}, the ports of each host going to the Policy `key_of(host id)`."""
    rows = session.execute(
        select(InstanceRow.host_id, InstanceRow.migration_host_id, InstanceRow.nic_generation,
               InterfaceRow.interface_id, InterfaceRow.attachment_id, InterfaceRow.mac,
               InterfaceRow.source_dest_check, NetworkRow)
        .join(InstanceRow, InstanceRow.instance_id == InterfaceRow.instance_id)
        .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
        .where(or_(InstanceRow.host_id.in_(list(host_ids)), InstanceRow.migration_host_id.in_(list(host_ids))),
               InstanceRow.state != State.TERMINATED.value, InterfaceRow.attachment_status.in_(PLUGGED))).all()
    interface_ids = [row.interface_id for row in rows]
    addresses = _addresses_of(session, interface_ids)
    groups = _groups_of(session, interface_ids)
    ports, segments, host_ids = {}, {}, set(host_ids)
    for host_id, moving_to, generation, interface_id, attachment_id, mac, source_dest_check, network in rows:
        segment = segments.get(network.id) or segments.setdefault(network.id, Segment.of(network, names))
        # A moving instance has a port on each host: this generation's tap here, the next one there.
        for on_host, tap_generation in ((host_id, generation), (moving_to, generation + 1)):
            if on_host is None or on_host not in host_ids:
                continue
            ports.setdefault(key_of(on_host), []).append((segment, Port(
                interface_id, tap_name(installation, attachment_id, tap_generation), segment.bridge, mac.lower(),
                tuple(addresses.get(interface_id, ())), source_dest_check,
                tuple(sorted(groups.get(interface_id, ()))))))
    all_groups = _group_policies(session, sorted({g for held in ports.values() for _, port in held for g in port.groups}))
    by_id = {group.group_id: group for group in all_groups}
    all_members = dict(_members(session, sorted({peer for group in all_groups for permission in
                                                 group.ingress + group.egress for peer in permission.peer_groups})))
    policies = {}
    for key, held in ports.items():
        group_ids = sorted({group_id for _, port in held for group_id in port.groups})
        group_policies = tuple(by_id[group_id] for group_id in group_ids)
        peers = sorted({peer for group in group_policies for permission in group.ingress + group.egress
                        for peer in permission.peer_groups})
        policies[key] = Policy(tuple(sorted({segment.bridge: segment for segment, _ in held}.values(),
                                            key=lambda s: s.bridge)),
                               tuple(sorted((port for _, port in held), key=lambda p: p.tap)), group_policies,
                               tuple((peer, all_members[peer]) for peer in peers))
    return policies


def _addresses_of(session, interface_ids):
    """{interface_id: [address, …]}, the primary address first."""
    result = {}
    for chunk in _chunks(interface_ids):
        for interface_id, address, _primary in session.execute(
                select(Lease.interface_id, Lease.address, Lease.is_primary).where(Lease.interface_id.in_(chunk))
                .order_by(Lease.interface_id, Lease.is_primary.desc(), Lease.address)):
            result.setdefault(interface_id, []).append(addressing.to_text(address))
    return result


def _groups_of(session, interface_ids):
    result = {}
    for chunk in _chunks(interface_ids):
        for interface_id, group_id in session.execute(
                select(InterfaceGroup.interface_id, InterfaceGroup.group_id)
                .where(InterfaceGroup.interface_id.in_(chunk))):
            result.setdefault(interface_id, []).append(group_id)
    return result


def _group_policies(session, group_ids):
    merged = {}     # (group, egress, protocol, from, to) -> (cidrs, peer groups)
    for chunk in _chunks(group_ids):
        for rule in session.execute(
                select(RuleRow.group_id, RuleRow.egress, RuleRow.protocol, RuleRow.from_port, RuleRow.to_port,
                       RuleRow.cidr, RuleRow.peer_group_id).where(RuleRow.group_id.in_(chunk))):
            cidrs, peers = merged.setdefault(
                (rule.group_id, rule.egress, rule.protocol, rule.from_port, rule.to_port), (set(), set()))
            if rule.cidr is not None:
                cidrs.add(rule.cidr)      # kept normalized (a.b.c.d/n) by the API
            if rule.peer_group_id is not None:
                peers.add(rule.peer_group_id)
    policies = {group_id: ([], []) for group_id in group_ids}
    for (group_id, egress, protocol, from_port, to_port), (cidrs, peers) in sorted(
            merged.items(), key=lambda item: tuple('' if part is None else str(part) for part in item[0])):
        policies[group_id][1 if egress else 0].append(Permission(
            protocol, from_port, to_port, _collapsed(cidrs), tuple(sorted(peers))))
    return [GroupPolicy(group_id, tuple(ingress), tuple(egress)) for group_id, (ingress, egress) in policies.items()]


def _collapsed(cidrs):
    """CIDR blocks merged where they overlap or touch (nft refuses overlapping set elements)."""
    if str(ANYWHERE) in cidrs:
        return (str(ANYWHERE),)
    if len(cidrs) <= 1:
        return tuple(cidrs)
    return tuple(str(block) for block in ipaddress.collapse_addresses(ipaddress.IPv4Network(c) for c in cidrs))


def _members(session, group_ids):
    """((group id, (address, …)), …): every address leased to an interface in each group."""
    found = {group_id: set() for group_id in group_ids}
    for chunk in _chunks(group_ids):
        for group_id, address in session.execute(
                select(InterfaceGroup.group_id, Lease.address)
                .join(Lease, Lease.interface_id == InterfaceGroup.interface_id)
                .where(InterfaceGroup.group_id.in_(chunk))):
            found[group_id].add(address)
    return tuple((group_id, tuple(addressing.to_text(address) for address in sorted(addresses)))
                 for group_id, addresses in sorted(found.items()))


def _chunks(values, size=900):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]
