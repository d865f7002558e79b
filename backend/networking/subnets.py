"""Subnets: the EC2 face of virtual networks. Each is an isolated L2 segment inside one VPC.

A subnet lies inside its VPC's block and overlaps no other subnet of that VPC; VPCs may overlap each
other freely. As on AWS, five addresses of a subnet are never leased: the network address, the
router (.1), DNS (.2), one reserved for later (.3) and the broadcast address.
"""
import dataclasses
import ipaddress

from sqlalchemy import delete, func, select, update

from ..errors import Conflict, InvalidValue, NotFound
from ..models import Instance as InstanceRow, Lease, Network as NetworkRow, Tag, Vpc as VpcRow, is_resource_id
from . import addressing
from .networks import reserved_addresses
from .vpcs import check_vpc_id, new_subnet_row, owned_vpc, parse_block, visible

ATTRIBUTES = ('MapPublicIpOnLaunch',)


@dataclasses.dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    owner: str
    cidr: str
    zone: str | None
    is_default: bool
    map_public_ip: bool
    available: int
    name: str


class SubnetService:
    def __init__(self, db, vpcs, zones):
        self.db = db
        self.vpcs = vpcs
        self.zones = tuple(zones)

    def create(self, owner, vpc_id, cidr, zone=None):
        check_vpc_id(vpc_id)
        block = parse_block(cidr, 'InvalidSubnet.Range')
        if zone is not None and zone not in self.zones:
            raise InvalidValue(f"Value ({zone}) for parameter availabilityZone is invalid. "
                               f"Subnets can currently only be created in the following availability zones: "
                               f"{', '.join(self.zones)}.", code='InvalidParameterValue')
        with self.db.write() as session:
            vpc = owned_vpc(session, owner, vpc_id)
            if not block.subnet_of(ipaddress.IPv4Network(vpc.cidr)):
                raise InvalidValue(f"The CIDR '{cidr}' is invalid.", code='InvalidSubnet.Range')
            for other in session.scalars(select(NetworkRow.cidr).where(NetworkRow.vpc_pk == vpc.id)):
                if block.overlaps(ipaddress.IPv4Network(other)):
                    raise Conflict('InvalidSubnet.Conflict', f"The CIDR '{cidr}' conflicts with another subnet")
            row = new_subnet_row(vpc, owner, str(block), zone or self._least_used_zone(session, vpc))
            session.add(row)
            session.flush()
            return _record(row, vpc.vpc_id, 0)

    def delete(self, owner, subnet_id):
        check_subnet_id(subnet_id)
        with self.db.write() as session:
            row = session.scalar(select(NetworkRow).where(NetworkRow.subnet_id == subnet_id, NetworkRow.owner == owner,
                                                          NetworkRow.vpc_pk.is_not(None)).with_for_update())
            if row is None:
                raise NotFound('InvalidSubnetID.NotFound', f"The subnet ID '{subnet_id}' does not exist")
            if session.scalar(select(func.count()).select_from(Lease).where(Lease.network_id == row.id)):
                raise Conflict('DependencyViolation',
                               f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
            session.execute(delete(Tag).where(Tag.resource_id == subnet_id))
            # Terminated instances still listed keep their address, but no longer their subnet.
            session.execute(update(InstanceRow).where(InstanceRow.network_id == row.id).values(network_id=None))
            session.delete(row)

    def describe(self, owner, ids=None):
        """The subnets `owner` sees (those of its VPCs and the cloud's shared ones), by id."""
        for subnet_id in ids or ():
            check_subnet_id(subnet_id)
        self.vpcs.default_vpc(owner)
        with self.db.read() as session:
            query = visible(select(NetworkRow, VpcRow.vpc_id).join(VpcRow, VpcRow.id == NetworkRow.vpc_pk), owner)
            if ids:
                query = query.where(NetworkRow.subnet_id.in_(list(dict.fromkeys(ids))))
            rows = session.execute(query.order_by(NetworkRow.subnet_id)).all()
            leased = _leases_by_network(session, [row.id for row, _ in rows])
            records = [_record(row, vpc_id, leased.get(row.id, 0)) for row, vpc_id in rows]
        if ids:
            missing = sorted(set(ids) - {record.subnet_id for record in records})
            if missing:
                raise NotFound('InvalidSubnetID.NotFound', f"The subnet ID '{missing[0]}' does not exist")
        return records

    def modify_attribute(self, owner, subnet_id, map_public_ip):
        check_subnet_id(subnet_id)
        with self.db.write() as session:
            row = session.scalar(select(NetworkRow).where(NetworkRow.subnet_id == subnet_id,
                                                          NetworkRow.owner == owner))
            if row is None:
                raise NotFound('InvalidSubnetID.NotFound', f"The subnet ID '{subnet_id}' does not exist")
            row.map_public_ip = bool(map_public_ip)

    def _least_used_zone(self, session, vpc):
        counts = dict(session.execute(select(NetworkRow.zone, func.count()).where(NetworkRow.vpc_pk == vpc.id)
                                      .group_by(NetworkRow.zone)).all())
        return min(self.zones, key=lambda zone: (counts.get(zone, 0), self.zones.index(zone)))


def check_subnet_id(subnet_id):
    if not is_resource_id(subnet_id, 'subnet'):
        raise InvalidValue(f"Invalid id: '{subnet_id}'", code='InvalidSubnetID.Malformed')


def _leases_by_network(session, network_ids):
    counts = {}
    for start in range(0, len(network_ids), 900):
        chunk = network_ids[start:start + 900]
        counts.update(session.execute(select(Lease.network_id, func.count()).where(Lease.network_id.in_(chunk))
                                      .group_by(Lease.network_id)).all())
    return counts


def _record(row, vpc_id, leased):
    network = addressing.parse_network(row.cidr)
    first, last = addressing.usable_range(network)
    reserved = len(reserved_addresses(row) & set(range(first, last + 1)))
    return Subnet(row.subnet_id, vpc_id, row.owner, row.cidr, row.zone, row.is_default, row.map_public_ip,
                  (last - first + 1) - reserved - leased, row.name)

