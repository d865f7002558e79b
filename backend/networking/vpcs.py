"""VPCs: an account's private address space, and the default VPC every account gets on first need.

A VPC's subnets route to each other through the VPC's router and to nothing else, so two VPCs may use
the same addresses. The default VPC is made lazily, on the first call that needs it, as AWS's is:
172.31.0.0/16 with one /20 default subnet per availability zone. A deleted default VPC stays deleted
(its row is kept, marked) until CreateDefaultVpc, so a launch naming no subnet then fails as on AWS.
"""
import dataclasses
import datetime
import ipaddress

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, InvalidValue, NotFound
from ..models import (InternetGateway as GatewayRow, Network as NetworkRow, SecurityGroup, SecurityGroupRule,
                      Tag, Vpc as VpcRow, is_resource_id, new_resource_id)
from . import addressing

DEFAULT_VPC_CIDR = '172.31.0.0/16'
DEFAULT_SUBNET_PREFIX = 20
MIN_PREFIX, MAX_PREFIX = 16, 28       # what CreateVpc and CreateSubnet accept
DELETED = 'deleted'                   # a default VPC its account deleted: kept so it is not made again
ATTRIBUTES = {'enableDnsSupport': 'dns_support', 'enableDnsHostnames': 'dns_hostnames'}


@dataclasses.dataclass(frozen=True)
class Vpc:
    vpc_id: str
    owner: str
    cidr: str
    is_default: bool
    shared: bool
    state: str
    dns_support: bool
    dns_hostnames: bool
    created_at: datetime.datetime


class VpcService:
    def __init__(self, db, zones):
        self.db = db
        self.zones = tuple(zones)

    def create(self, owner, cidr):
        network = parse_block(cidr, 'InvalidVpc.Range')
        with self.db.write() as session:
            row = VpcRow(vpc_id=new_resource_id('vpc'), owner=owner, cidr=str(network), dns_support=True,
                         dns_hostnames=False, state='available')
            session.add(row)
            session.flush()
            return _record(row)

    def delete(self, owner, vpc_id):
        check_vpc_id(vpc_id)
        with self.db.write() as session:
            row = owned_vpc(session, owner, vpc_id)
            if session.scalar(select(func.count()).select_from(NetworkRow).where(NetworkRow.vpc_pk == row.id)) or \
                    session.scalar(select(GatewayRow.gateway_id).where(GatewayRow.vpc_pk == row.id)):
                raise Conflict('DependencyViolation', f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
            groups = session.execute(select(SecurityGroup.group_id, SecurityGroup.name)
                                     .where(SecurityGroup.vpc_pk == row.id)).all()
            if any(name != 'default' for _, name in groups):
                raise Conflict('DependencyViolation', f"The vpc '{vpc_id}' has dependencies and cannot be deleted.")
            # Its default groups go with it, as on AWS.
            defaults = [group_id for group_id, _ in groups]
            session.execute(delete(SecurityGroupRule).where(SecurityGroupRule.group_id.in_(defaults)))
            session.execute(delete(SecurityGroup).where(SecurityGroup.group_id.in_(defaults)))
            session.execute(delete(Tag).where(Tag.resource_id.in_([vpc_id, *defaults])))
            if row.is_default:
                row.state = DELETED
            else:
                session.delete(row)

    def create_default(self, owner):
        """CreateDefaultVpc: only once the earlier default VPC was deleted (or there never was one)."""
        with self.db.write() as session:
            row = session.scalar(select(VpcRow).where(VpcRow.owner == owner, VpcRow.is_default.is_(True)))
            if row is not None and row.state != DELETED:
                raise Conflict('DefaultVpcAlreadyExists', f'A Default VPC already exists for this account '
                                                          f'in this region: {row.vpc_id}.')
            if row is not None:
                session.delete(row)
        return self.default_vpc(owner)

    def describe(self, owner, ids=None):
        """The VPCs `owner` sees (its own and the cloud's shared ones), by id; every id must be one."""
        if ids:
            for vpc_id in ids:
                check_vpc_id(vpc_id)
        self.default_vpc(owner)
        with self.db.read() as session:
            query = visible(select(VpcRow), owner).order_by(VpcRow.vpc_id)
            if ids:
                query = query.where(VpcRow.vpc_id.in_(list(dict.fromkeys(ids))))
            records = [_record(row) for row in session.scalars(query)]
        if ids:
            missing = sorted(set(ids) - {record.vpc_id for record in records})
            if missing:
                raise NotFound('InvalidVpcID.NotFound', f"The vpc ID '{missing[0]}' does not exist")
        return records

    def attribute(self, owner, vpc_id, name):
        column = _attribute_column(name)
        (record,) = self.describe(owner, [vpc_id])
        return getattr(record, column)

    def modify_attribute(self, owner, vpc_id, name, value):
        column = _attribute_column(name)
        check_vpc_id(vpc_id)
        with self.db.write() as session:
            row = owned_vpc(session, owner, vpc_id)
            if column == 'dns_hostnames' and value and not row.dns_support:
                raise InvalidValue('enableDnsHostnames needs enableDnsSupport', code='InvalidParameterValue')
            if column == 'dns_support' and not value and row.dns_hostnames:
                raise InvalidValue('enableDnsSupport cannot be turned off while enableDnsHostnames is on',
                                   code='InvalidParameterValue')
            setattr(row, column, bool(value))

    # -- the default VPC -----------------------------------------------------------------------------

    def default_vpc(self, owner):
        """The account's default VPC, made now with a default subnet in every zone if it has none.

        Returns the record, or None when the account deleted it.
        """
        with self.db.read() as session:
            row = session.scalar(select(VpcRow).where(VpcRow.owner == owner, VpcRow.is_default.is_(True)))
            if row is not None:
                # Made once; its owner may delete default subnets, which are then not made again.
                return None if row.state == DELETED else _record(row)
        try:
            with self.db.write() as session:
                return self._make_default(session, owner)
        except IntegrityError:
            # Another request made it first: use that one.
            return self.default_vpc(owner)

    def _make_default(self, session, owner):
        row = session.scalar(select(VpcRow).where(VpcRow.owner == owner, VpcRow.is_default.is_(True)))
        if row is not None:
            return None if row.state == DELETED else _record(row)
        row = VpcRow(vpc_id=new_resource_id('vpc'), owner=owner, cidr=DEFAULT_VPC_CIDR, is_default=True,
                     dns_support=True, dns_hostnames=True, state='available')
        session.add(row)
        session.flush()
        attach_new_gateway(session, row)
        blocks = ipaddress.IPv4Network(row.cidr).subnets(new_prefix=DEFAULT_SUBNET_PREFIX)
        for zone, block in zip(self.zones, blocks):
            session.add(new_subnet_row(row, owner, str(block), zone, is_default=True))
        session.flush()
        return _record(row)


# -- shared with the subnet and instance services ----------------------------------------------------

def attach_new_gateway(session, vpc_row):
    """Give a VPC a gateway of its owner's, attached and routed (default and shared VPCs, as on AWS)."""
    session.add(GatewayRow(gateway_id=new_resource_id('igw'), owner=vpc_row.owner, vpc_pk=vpc_row.id))
    vpc_row.internet_route = True


def check_vpc_id(vpc_id):
    if not is_resource_id(vpc_id, 'vpc'):
        raise InvalidValue(f"Invalid id: '{vpc_id}'", code='InvalidVpcID.Malformed')


def visible(query, owner):
    """VPCs `owner` may see and launch into: its own, and the cloud's shared ones."""
    return query.where((VpcRow.owner == owner) | VpcRow.shared.is_(True), VpcRow.state != DELETED)


def owned_vpc(session, owner, vpc_id):
    """The owner's VPC row, locked; a shared VPC of the cloud cannot be changed by its users."""
    row = session.scalar(select(VpcRow).where(VpcRow.vpc_id == vpc_id, VpcRow.owner == owner,
                                              VpcRow.state != DELETED).with_for_update())
    if row is None:
        raise NotFound('InvalidVpcID.NotFound', f"The vpc ID '{vpc_id}' does not exist")
    return row


def parse_block(cidr, range_code):
    """A CIDR block for a VPC or subnet: a network address and a /16 to /28 prefix."""
    try:
        network = ipaddress.IPv4Network(cidr or '', strict=True)
    except ValueError:
        raise InvalidValue(f"Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block.",
                           code='InvalidParameterValue') from None
    if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
        raise InvalidValue(f"The CIDR '{cidr}' is invalid.", code=range_code)
    return network


def new_subnet_row(vpc_row, owner, cidr, zone, is_default=False, map_public_ip=False):
    """A subnet of `vpc_row`: the VPC router takes its first address, as AWS's does."""
    network = addressing.parse_network(cidr)
    subnet_id = new_resource_id('subnet')
    return NetworkRow(name=subnet_id, subnet_id=subnet_id, kind='private', cidr=str(network),
                      gateway=addressing.to_text(int(network.network_address) + 1), vpc_pk=vpc_row.id,
                      owner=owner, zone=zone, is_default=is_default, map_public_ip=map_public_ip, cursor=0)


def _attribute_column(name):
    column = ATTRIBUTES.get(name)
    if column is None:
        raise InvalidValue(f"Value ({name}) for parameter attribute is invalid. Unknown attribute.",
                           code='InvalidParameterValue')
    return column


def _record(row):
    return Vpc(row.vpc_id, row.owner, row.cidr, row.is_default, row.shared, row.state, row.dns_support,
               row.dns_hostnames, row.created_at)
