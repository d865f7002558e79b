"""Security groups: rules for traffic into and out of the network interfaces that are members.

A group belongs to one account and one VPC. Each (VPC, account) has a `default` group, made when
first needed, that lets in all traffic from its own members and lets everything out; a new group
lets everything out and nothing in. A rule is one protocol, one port range (for ICMP, a type and a
code) and one peer: a CIDR block or a group of the same VPC. Interfaces name their groups; an
interface that names none is in its VPC's default group.
"""
import dataclasses
import datetime
import ipaddress

from sqlalchemy import delete, func, select

from ..errors import Conflict, InvalidValue, NotFound
from ..models import (InterfaceGroup, Network as NetworkRow, NetworkInterface as InterfaceRow, SecurityGroup as
                      GroupRow, SecurityGroupRule as RuleRow, Vpc as VpcRow, is_resource_id, new_resource_id)
from .vpcs import DELETED, check_vpc_id

DEFAULT_GROUP = 'default'
# Protocol names and numbers clients send, as the name kept.
PROTOCOLS = {'tcp': 'tcp', '6': 'tcp', 'udp': 'udp', '17': 'udp', 'icmp': 'icmp', '1': 'icmp', '-1': '-1', 'all': '-1'}
ANYWHERE = '0.0.0.0/0'


@dataclasses.dataclass(frozen=True)
class Permission:
    """One rule as asked for: the protocol as kept, the ports (None for all), one peer."""
    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str | None = None
    peer_group_id: str | None = None
    description: str = ''

    @property
    def key(self):
        return (self.protocol, self.from_port, self.to_port, self.cidr, self.peer_group_id)


@dataclasses.dataclass(frozen=True)
class Rule:
    rule_id: str
    group_id: str
    owner: str
    egress: bool
    permission: Permission


@dataclasses.dataclass(frozen=True)
class Group:
    group_id: str
    owner: str
    vpc_id: str
    name: str
    description: str
    rules: tuple
    created_at: datetime.datetime


def permission(protocol, from_port=None, to_port=None, cidr=None, peer_group_id=None, description=''):
    """A checked Permission from what a client sent, as AWS checks it."""
    kept = PROTOCOLS.get(str(protocol).lower()) if protocol is not None else None
    if kept is None:
        if not str(protocol).isdigit() or not 0 <= int(protocol) <= 255:
            raise InvalidValue(f"Invalid value '{protocol}' for IP protocol. Unknown protocol.",
                               code='InvalidParameterValue')
        kept = str(int(protocol))
    if kept in ('tcp', 'udp'):
        if from_port is None or to_port is None or not 0 <= from_port <= to_port <= 65535:
            raise InvalidValue(f'Invalid port range {from_port}-{to_port} for {kept}: ports are 0 to 65535, '
                               'from no higher than to.', code='InvalidParameterValue')
    elif kept == 'icmp':
        from_port = -1 if from_port is None else from_port
        to_port = -1 if to_port is None else to_port
        if not -1 <= from_port <= 255 or not -1 <= to_port <= 255:
            raise InvalidValue(f'Invalid ICMP type {from_port} or code {to_port}.', code='InvalidParameterValue')
    else:
        from_port = to_port = None        # all protocols, or a protocol without ports
    if (cidr is None) == (peer_group_id is None):
        raise InvalidValue('A rule needs exactly one peer: a CIDR block or a security group.',
                           code='InvalidParameterValue')
    if cidr is not None:
        try:
            cidr = str(ipaddress.IPv4Network(cidr, strict=False))
        except ValueError:
            raise InvalidValue(f"CIDR block {cidr} is malformed", code='InvalidParameterValue') from None
    if len(description or '') > 255:
        raise InvalidValue('A rule description is at most 255 characters long.')
    return Permission(kept, from_port, to_port, cidr, peer_group_id, description or '')


class SecurityGroupService:
    def __init__(self, db, vpcs, limits, wake_workers=None):
        self.db = db
        self.vpcs = vpcs
        self.limits = limits
        self.wake_workers = wake_workers or (lambda: None)

    def create(self, owner, name, description, vpc_id=None):
        if not name or len(name) > 255 or name.lower().startswith('sg-'):
            raise InvalidValue(f"Invalid value '{name}' for groupName.", code='InvalidParameterValue')
        if name == DEFAULT_GROUP:
            raise InvalidValue("The security group 'default' already exists in every VPC.",
                               code='InvalidGroup.Reserved')
        if not description or len(description) > 255:
            raise InvalidValue('A group description of 1 to 255 characters is required.',
                               code='InvalidParameterValue')
        vpc_pk, vpc_id = self._vpc(owner, vpc_id)
        with self.db.write() as session:
            if session.scalar(select(GroupRow.group_id).where(GroupRow.vpc_pk == vpc_pk, GroupRow.owner == owner,
                                                              GroupRow.name == name)):
                raise Conflict('InvalidGroup.Duplicate', f"The security group '{name}' already exists for VPC "
                                                         f"'{vpc_id}'")
            default_group(session, vpc_pk, owner)      # it always exists on AWS, and counts
            count = session.scalar(select(func.count()).select_from(GroupRow).where(GroupRow.vpc_pk == vpc_pk,
                                                                                    GroupRow.owner == owner))
            if count >= self.limits.groups_per_vpc:
                raise InvalidValue(f'The maximum number of security groups in {vpc_id} '
                                   f'({self.limits.groups_per_vpc}) has been reached.', code='SecurityGroupLimitExceeded')
            row = _new_group(session, owner, vpc_pk, name, description)
            return row.group_id

    def delete(self, owner, group_id=None, name=None):
        with self.db.write() as session:
            row = self._find(session, owner, group_id, name)
            if row.name == DEFAULT_GROUP:
                raise Conflict('CannotDelete', f'the specified group: "{row.group_id}" name: "default" cannot be '
                                               'deleted by a user')
            if session.scalar(select(func.count()).select_from(InterfaceGroup)
                              .where(InterfaceGroup.group_id == row.group_id)):
                raise Conflict('DependencyViolation', f"resource {row.group_id} has a dependent object")
            if session.scalar(select(func.count()).select_from(RuleRow).where(
                    RuleRow.peer_group_id == row.group_id, RuleRow.group_id != row.group_id)):
                raise Conflict('DependencyViolation', f"resource {row.group_id} is referenced by another group's rule")
            session.execute(delete(RuleRow).where(RuleRow.group_id == row.group_id))
            session.delete(row)
        self.wake_workers()
        return row.group_id

    def describe(self, owner, ids=None, names=None):
        """The owner's groups (its default VPC's default group made first), by id or by name."""
        for group_id in ids or ():
            check_group_id(group_id)
        default_vpc = self.vpcs.default_vpc(owner)
        # Every VPC of the owner shows its default group, as on AWS, where CreateVpc makes it; a write
        # transaction only when one is missing, since describing is frequent.
        lacking = select(VpcRow.id).where(
            VpcRow.owner == owner, VpcRow.state != DELETED,
            ~VpcRow.id.in_(select(GroupRow.vpc_pk).where(GroupRow.owner == owner, GroupRow.name == DEFAULT_GROUP)))
        with self.db.read() as session:
            missing = session.scalars(lacking).all()
        if missing:
            with self.db.write() as session:
                for vpc_pk in session.scalars(lacking).all():
                    default_group(session, vpc_pk, owner)
        with self.db.read() as session:
            query = (select(GroupRow, VpcRow.vpc_id).join(VpcRow, VpcRow.id == GroupRow.vpc_pk)
                     .where(GroupRow.owner == owner).order_by(GroupRow.group_id))
            if ids:
                query = query.where(GroupRow.group_id.in_(list(dict.fromkeys(ids))))
            if names:
                query = query.where(GroupRow.name.in_(list(names)))
                if default_vpc is not None:    # names mean the default VPC's groups, as on AWS
                    query = query.where(VpcRow.vpc_id == default_vpc.vpc_id)
            rows = session.execute(query).all()
            rules = _rules_of(session, [row.group_id for row, _ in rows])
        groups = [Group(row.group_id, row.owner, vpc_id, row.name, row.description, tuple(rules.get(row.group_id, ())),
                        row.created_at) for row, vpc_id in rows]
        _all_found(ids, {group.group_id for group in groups}, 'group ID')
        _all_found(names, {group.name for group in groups}, 'group')
        return groups

    def authorize(self, owner, permissions, egress, group_id=None, name=None):
        """Add rules; all or none. Returns the new Rules."""
        with self.db.write() as session:
            row = self._find(session, owner, group_id, name)
            permissions = [self._resolved_peer(session, owner, row, p) for p in permissions]
            existing = {rule.permission.key for rule in _rules_of(session, [row.group_id]).get(row.group_id, ())
                        if rule.egress == egress}
            for asked in permissions:
                if asked.key in existing:
                    raise Conflict('InvalidPermission.Duplicate', f'the specified rule "{_describe(asked)}" already '
                                                                  'exists')
                existing.add(asked.key)
            if len(existing) > self.limits.rules_per_group:
                raise InvalidValue(f'The maximum number of rules per security group ({self.limits.rules_per_group} '
                                   'each way) has been reached.', code='RulesPerSecurityGroupLimitExceeded')
            made = [_add_rule(session, row.group_id, egress, asked) for asked in permissions]
            result = [Rule(rule.rule_id, row.group_id, owner, egress, asked) for rule, asked in zip(made, permissions)]
        self.wake_workers()
        return result

    def revoke(self, owner, egress, permissions=(), rule_ids=(), group_id=None, name=None):
        with self.db.write() as session:
            row = self._find(session, owner, group_id, name)
            rules = [rule for rule in _rules_of(session, [row.group_id]).get(row.group_id, ()) if rule.egress == egress]
            doomed = []
            for asked in [self._resolved_peer(session, owner, row, p) for p in permissions]:
                match = [rule.rule_id for rule in rules if rule.permission.key == asked.key]
                if not match:
                    raise NotFound('InvalidPermission.NotFound', f'The specified rule "{_describe(asked)}" does not '
                                                                 'exist in this security group.')
                doomed += match
            for rule_id in rule_ids:
                if rule_id not in {rule.rule_id for rule in rules}:
                    raise NotFound('InvalidSecurityGroupRuleId.NotFound', f"The security group rule ID "
                                                                          f"'{rule_id}' does not exist")
                doomed.append(rule_id)
            session.execute(delete(RuleRow).where(RuleRow.rule_id.in_(doomed)))
        self.wake_workers()

    def modify_rules(self, owner, group_id, changes):
        """ModifySecurityGroupRules: replace rules of one group in place, keeping their ids; `changes` is
        [(rule id, Permission), …]. All or none."""
        with self.db.write() as session:
            row = self._find(session, owner, group_id, None)
            rules = {rule.rule_id: rule for rule in _rules_of(session, [row.group_id]).get(row.group_id, ())}
            for rule_id, asked in changes:
                if not is_resource_id(rule_id, 'sgr'):
                    raise InvalidValue(f"Invalid id: '{rule_id}'", code='InvalidSecurityGroupRuleId.Malformed')
                if rule_id not in rules:
                    raise NotFound('InvalidSecurityGroupRuleId.NotFound',
                                   f"The security group rule ID '{rule_id}' does not exist")
                asked = self._resolved_peer(session, owner, row, asked)
                egress = rules[rule_id].egress
                if any(other.rule_id != rule_id and other.egress == egress and other.permission.key == asked.key
                       for other in rules.values()):
                    raise Conflict('InvalidPermission.Duplicate', f'the specified rule "{_describe(asked)}" already '
                                                                  'exists')
                rules[rule_id] = dataclasses.replace(rules[rule_id], permission=asked)
                rule = session.get(RuleRow, rule_id)
                rule.protocol, rule.from_port, rule.to_port = asked.protocol, asked.from_port, asked.to_port
                rule.cidr, rule.peer_group_id, rule.description = asked.cidr, asked.peer_group_id, asked.description
        self.wake_workers()

    def describe_rules(self, owner, egress, group_id=None, name=None, permissions=(), by_rule_id=None):
        """UpdateSecurityGroupRuleDescriptions{Ingress,Egress}: set the descriptions of the rules that
        match `permissions` (protocol, ports and peer) or of the rules given as {rule id: description}."""
        with self.db.write() as session:
            row = self._find(session, owner, group_id, name)
            rules = [rule for rule in _rules_of(session, [row.group_id]).get(row.group_id, ()) if rule.egress == egress]
            updates = dict(by_rule_id or {})
            for asked in [self._resolved_peer(session, owner, row, p) for p in permissions]:
                match = [rule.rule_id for rule in rules if rule.permission.key == asked.key]
                if not match:
                    raise NotFound('InvalidPermission.NotFound', f'The specified rule "{_describe(asked)}" does not '
                                                                 'exist in this security group.')
                updates.update({rule_id: asked.description for rule_id in match})
            for rule_id, description in updates.items():
                if rule_id not in {rule.rule_id for rule in rules}:
                    raise NotFound('InvalidSecurityGroupRuleId.NotFound',
                                   f"The security group rule ID '{rule_id}' does not exist")
                if len(description or '') > 255:
                    raise InvalidValue('A rule description is at most 255 characters long.')
                session.get(RuleRow, rule_id).description = description or ''

    def rules(self, owner, rule_ids=None, group_ids=None):
        """DescribeSecurityGroupRules: the owner's rules, by rule id or group."""
        with self.db.read() as session:
            query = select(GroupRow.group_id).where(GroupRow.owner == owner)
            if group_ids:
                query = query.where(GroupRow.group_id.in_(list(group_ids)))
            owned = list(session.scalars(query))
            found = [rule for rules in _rules_of(session, owned).values() for rule in rules]
        if rule_ids:
            found = [rule for rule in found if rule.rule_id in rule_ids]
            missing = sorted(set(rule_ids) - {rule.rule_id for rule in found})
            if missing:
                raise NotFound('InvalidSecurityGroupRuleId.NotFound', f"The security group rule ID '{missing[0]}' "
                                                                      'does not exist')
        return sorted(found, key=lambda rule: rule.rule_id)

    # -- membership ------------------------------------------------------------------------------------

    def set_interface_groups(self, owner, interface_id, group_ids):
        """ModifyNetworkInterfaceAttribute / ModifyInstanceAttribute groupSet: replace the interface's groups."""
        with self.db.write() as session:
            interface = session.scalar(select(InterfaceRow).where(InterfaceRow.interface_id == interface_id,
                                                                  InterfaceRow.owner == owner))
            if interface is None:
                raise NotFound('InvalidNetworkInterfaceID.NotFound',
                               f"The networkInterface ID '{interface_id}' does not exist")
            vpc_pk = session.scalar(select(NetworkRow.vpc_pk).where(NetworkRow.id == interface.network_id))
            chosen = groups_for(session, owner, vpc_pk, group_ids=group_ids, limit=self.limits.groups_per_interface)
            session.execute(delete(InterfaceGroup).where(InterfaceGroup.interface_id == interface_id))
            session.execute(InterfaceGroup.__table__.insert(), [{'interface_id': interface_id, 'group_id': group_id}
                                                                for group_id in chosen])
        self.wake_workers()

    # -- helpers -----------------------------------------------------------------------------------------

    def _vpc(self, owner, vpc_id):
        if vpc_id is None:
            default = self.vpcs.default_vpc(owner)
            if default is None:
                raise InvalidValue('No default VPC for this user', code='VPCIdNotSpecified')
            vpc_id = default.vpc_id
        check_vpc_id(vpc_id)
        with self.db.read() as session:
            vpc_pk = session.scalar(select(VpcRow.id).where(
                VpcRow.vpc_id == vpc_id, VpcRow.state != DELETED,
                (VpcRow.owner == owner) | VpcRow.shared.is_(True)))
        if vpc_pk is None:
            raise NotFound('InvalidVpcID.NotFound', f"The vpc ID '{vpc_id}' does not exist")
        return vpc_pk, vpc_id

    def _find(self, session, owner, group_id, name):
        """The owner's group by id, or by name in its default VPC, locked."""
        if group_id:
            check_group_id(group_id)
            row = session.scalar(select(GroupRow).where(GroupRow.group_id == group_id, GroupRow.owner == owner)
                                 .with_for_update())
            if row is None:
                raise NotFound('InvalidGroup.NotFound', f"The security group '{group_id}' does not exist")
            return row
        if not name:
            raise InvalidValue('Either GroupId or GroupName must be given', code='MissingParameter')
        default_vpc = self.vpcs.default_vpc(owner)
        row = None
        if default_vpc is not None:
            vpc_pk = _vpc_pk(session, default_vpc.vpc_id)
            row = default_group(session, vpc_pk, owner) if name == DEFAULT_GROUP else session.scalar(
                select(GroupRow).where(GroupRow.vpc_pk == vpc_pk, GroupRow.owner == owner, GroupRow.name == name))
        if row is None:
            raise NotFound('InvalidGroup.NotFound', f"The security group '{name}' does not exist in default VPC")
        return row

    def _resolved_peer(self, session, owner, group, asked):
        """A rule's peer group must be one of the owner's in the same VPC (given by id or by name)."""
        if asked.peer_group_id is None:
            return asked
        peer = asked.peer_group_id
        if is_resource_id(peer, 'sg'):
            row = session.scalar(select(GroupRow).where(GroupRow.group_id == peer, GroupRow.owner == owner))
        elif peer == DEFAULT_GROUP:
            row = default_group(session, group.vpc_pk, owner)
        else:
            row = session.scalar(select(GroupRow).where(GroupRow.vpc_pk == group.vpc_pk, GroupRow.owner == owner,
                                                        GroupRow.name == peer))
        if row is None or row.vpc_pk != group.vpc_pk:
            raise NotFound('InvalidGroup.NotFound', f"The security group '{peer}' does not exist")
        return dataclasses.replace(asked, peer_group_id=row.group_id)


def groups_for(session, owner, vpc_pk, group_ids=(), names=(), limit=None):
    """The group ids an interface of `owner` in this VPC joins: those named, else the default; at most
    `limit` of them."""
    if limit is not None and len(set(group_ids) | set(names)) > limit:
        raise InvalidValue(f'An interface is in at most {limit} security groups.',
                           code='SecurityGroupsPerInterfaceLimitExceeded')
    found = []
    for group_id in group_ids:
        check_group_id(group_id)
        row = session.scalar(select(GroupRow).where(GroupRow.group_id == group_id, GroupRow.owner == owner))
        if row is None:
            raise NotFound('InvalidGroup.NotFound', f"The security group '{group_id}' does not exist")
        if row.vpc_pk != vpc_pk:
            raise InvalidValue(f'Security group {group_id} and the subnet belong to different networks.',
                               code='InvalidParameter')
        found.append(row.group_id)
    for name in names:
        if name == DEFAULT_GROUP:
            found.append(default_group(session, vpc_pk, owner).group_id)
            continue
        row = session.scalar(select(GroupRow).where(GroupRow.vpc_pk == vpc_pk, GroupRow.owner == owner,
                                                    GroupRow.name == name))
        if row is None:
            raise NotFound('InvalidGroup.NotFound', f"The security group '{name}' does not exist in this VPC")
        found.append(row.group_id)
    return list(dict.fromkeys(found)) or [default_group(session, vpc_pk, owner).group_id]


def default_group(session, vpc_pk, owner):
    """The (VPC, account)'s default group, made now if it is not there yet."""
    row = session.scalar(select(GroupRow).where(GroupRow.vpc_pk == vpc_pk, GroupRow.owner == owner,
                                                GroupRow.name == DEFAULT_GROUP))
    if row is None:
        row = _new_group(session, owner, vpc_pk, DEFAULT_GROUP, 'default VPC security group')
        _add_rule(session, row.group_id, False, Permission('-1', None, None, peer_group_id=row.group_id))
    return row


def join_groups(session, rows):
    """Insert interface memberships: rows of {'interface_id', 'group_id'}."""
    if rows:
        session.execute(InterfaceGroup.__table__.insert(), rows)


def groups_of_interfaces(session, interface_ids):
    """{interface_id: [(group_id, name), …]}."""
    result = {}
    for start in range(0, len(interface_ids), 900):
        for interface_id, group_id, name in session.execute(
                select(InterfaceGroup.interface_id, GroupRow.group_id, GroupRow.name)
                .join(GroupRow, GroupRow.group_id == InterfaceGroup.group_id)
                .where(InterfaceGroup.interface_id.in_(interface_ids[start:start + 900]))
                .order_by(GroupRow.group_id)):
            result.setdefault(interface_id, []).append((group_id, name))
    return result


def check_group_id(group_id):
    if not is_resource_id(group_id, 'sg'):
        raise InvalidValue(f"Invalid id: '{group_id}'", code='InvalidGroupId.Malformed')


def _new_group(session, owner, vpc_pk, name, description):
    row = GroupRow(group_id=new_resource_id('sg'), owner=owner, vpc_pk=vpc_pk, name=name, description=description)
    session.add(row)
    session.flush()
    _add_rule(session, row.group_id, True, Permission('-1', None, None, cidr=ANYWHERE))
    return row


def _add_rule(session, group_id, egress, asked):
    row = RuleRow(rule_id=new_resource_id('sgr'), group_id=group_id, egress=egress, protocol=asked.protocol,
                  from_port=asked.from_port, to_port=asked.to_port, cidr=asked.cidr, peer_group_id=asked.peer_group_id,
                  description=asked.description)
    session.add(row)
    session.flush()
    return row


def _rules_of(session, group_ids):
    result = {}
    for start in range(0, len(group_ids), 900):
        for row, owner in session.execute(select(RuleRow, GroupRow.owner).join(GroupRow, GroupRow.group_id == RuleRow.group_id)
                                          .where(RuleRow.group_id.in_(group_ids[start:start + 900]))
                                          .order_by(RuleRow.created_at, RuleRow.rule_id)):
            result.setdefault(row.group_id, []).append(Rule(
                row.rule_id, row.group_id, owner, row.egress,
                Permission(row.protocol, row.from_port, row.to_port, row.cidr, row.peer_group_id, row.description)))
    return result


def _vpc_pk(session, vpc_id):
    return session.scalar(select(VpcRow.id).where(VpcRow.vpc_id == vpc_id))


def _describe(asked):
    peer = asked.cidr or asked.peer_group_id
    ports = '' if asked.from_port is None else f', from port: {asked.from_port}, to port: {asked.to_port}'
    protocol = 'ALL' if asked.protocol == '-1' else asked.protocol.upper()
    return f'peer: {peer}, {protocol}{ports}, ALLOW'


def _all_found(wanted, found, noun):
    missing = sorted(set(wanted or ()) - set(found))
    if missing:
        raise NotFound('InvalidGroup.NotFound', f"The security {noun} '{missing[0]}' does not exist")
