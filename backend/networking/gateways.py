"""Internet gateways and route tables, minimal but true.

A VPC reaches the outside, and its elastic IPs are reachable, only when an internet gateway is
attached and its main route table routes 0.0.0.0/0 to it; the host's router applies a VPC's NAT only
then. Each VPC has exactly one route table, its main one, with the `local` route for its block and
at most that default route; its id is derived from the VPC's, since it lives and dies with it.
Default VPCs and the cloud's shared VPCs come with a gateway attached and routed, as on AWS.
"""
import dataclasses
import datetime

from sqlalchemy import func, select

from ..errors import Conflict, InvalidValue, NotFound
from ..models import (Address, InternetGateway as GatewayRow, Network as NetworkRow, NetworkInterface as InterfaceRow,
                      Vpc as VpcRow, is_resource_id, new_resource_id)
from .vpcs import DELETED, check_vpc_id, owned_vpc, visible

DEFAULT_ROUTE = '0.0.0.0/0'


@dataclasses.dataclass(frozen=True)
class Gateway:
    gateway_id: str
    owner: str
    vpc_id: str | None
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class RouteTable:
    route_table_id: str
    vpc_id: str
    owner: str
    cidr: str
    gateway_id: str | None          # the attached gateway, if any
    internet_route: bool            # 0.0.0.0/0 routes to it


def route_table_id(vpc_id):
    return f'rtb-{vpc_id[4:]}'


def has_public_addresses(session, vpc_pk):
    return bool(session.scalar(
        select(func.count()).select_from(Address)
        .join(InterfaceRow, InterfaceRow.interface_id == Address.interface_id)
        .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
        .where(NetworkRow.vpc_pk == vpc_pk)))


class GatewayService:
    def __init__(self, db, wake_workers=None):
        self.db = db
        self.wake_workers = wake_workers or (lambda: None)

    def create(self, owner):
        with self.db.write() as session:
            row = GatewayRow(gateway_id=new_resource_id('igw'), owner=owner)
            session.add(row)
            session.flush()
            return Gateway(row.gateway_id, owner, None, row.created_at)

    def delete(self, owner, gateway_id):
        with self.db.write() as session:
            row = _owned(session, owner, gateway_id)
            if row.vpc_pk is not None:
                raise Conflict('DependencyViolation', f"The internetGateway '{gateway_id}' has dependencies and "
                                                      'cannot be deleted.')
            session.delete(row)

    def attach(self, owner, gateway_id, vpc_id):
        check_vpc_id(vpc_id)
        with self.db.write() as session:
            row = _owned(session, owner, gateway_id)
            vpc = owned_vpc(session, owner, vpc_id)
            if row.vpc_pk is not None:
                raise Conflict('Resource.AlreadyAssociated', f'resource {gateway_id} is already attached to network '
                                                             f'{_vpc_id(session, row.vpc_pk)}')
            if session.scalar(select(GatewayRow.gateway_id).where(GatewayRow.vpc_pk == vpc.id)):
                raise Conflict('Resource.AlreadyAssociated', f'Network {vpc_id} already has an internet gateway '
                                                             'attached')
            row.vpc_pk = vpc.id

    def detach(self, owner, gateway_id, vpc_id):
        check_vpc_id(vpc_id)
        with self.db.write() as session:
            row = _owned(session, owner, gateway_id)
            vpc = owned_vpc(session, owner, vpc_id)
            if row.vpc_pk != vpc.id:
                raise Conflict('Gateway.NotAttached', f'resource {gateway_id} is not attached to network {vpc_id}')
            if has_public_addresses(session, vpc.id):
                raise Conflict('DependencyViolation', f'Network {vpc_id} has some mapped public address(es). Please '
                                                      'unmap those public address(es) before detaching the gateway.')
            row.vpc_pk = None
            vpc.internet_route = False
        self.wake_workers()

    def describe(self, owner, ids=None):
        for gateway_id in ids or ():
            _check_gateway_id(gateway_id)
        with self.db.read() as session:
            query = (select(GatewayRow, VpcRow.vpc_id).outerjoin(VpcRow, VpcRow.id == GatewayRow.vpc_pk)
                     .where(GatewayRow.owner == owner).order_by(GatewayRow.gateway_id))
            if ids:
                query = query.where(GatewayRow.gateway_id.in_(list(dict.fromkeys(ids))))
            records = [Gateway(row.gateway_id, row.owner, vpc_id, row.created_at)
                       for row, vpc_id in session.execute(query)]
        _all_found(ids, [record.gateway_id for record in records], 'InvalidInternetGatewayID.NotFound',
                   'internetGateway')
        return records

    # -- route tables ---------------------------------------------------------------------------------

    def route_tables(self, owner, ids=None):
        """The main route table of every VPC `owner` sees."""
        for table_id in ids or ():
            _check_route_table_id(table_id)
        with self.db.read() as session:
            rows = session.execute(visible(select(VpcRow, GatewayRow.gateway_id)
                                           .outerjoin(GatewayRow, GatewayRow.vpc_pk == VpcRow.id), owner)
                                   .order_by(VpcRow.vpc_id)).all()
        tables = [RouteTable(route_table_id(vpc.vpc_id), vpc.vpc_id, vpc.owner, vpc.cidr, gateway_id,
                             vpc.internet_route and gateway_id is not None) for vpc, gateway_id in rows]
        if ids:
            tables = [table for table in tables if table.route_table_id in ids]
            _all_found(ids, [table.route_table_id for table in tables], 'InvalidRouteTableID.NotFound', 'routeTable')
        return tables

    def create_route(self, owner, table_id, destination, gateway_id):
        _check_route_table_id(table_id)
        if destination != DEFAULT_ROUTE:
            raise InvalidValue(f'Only the default route ({DEFAULT_ROUTE}) to an internet gateway can be added here.',
                               code='InvalidParameterValue')
        with self.db.write() as session:
            vpc = self._vpc_of_table(session, owner, table_id)
            attached = session.scalar(select(GatewayRow.gateway_id).where(GatewayRow.vpc_pk == vpc.id))
            if not gateway_id or gateway_id != attached:
                raise InvalidValue(f'route table {table_id} and network gateway {gateway_id} belong to different '
                                   'networks', code='InvalidParameterValue')
            if vpc.internet_route:
                raise Conflict('RouteAlreadyExists', f'The route identified by {destination} already exists.')
            vpc.internet_route = True
        self.wake_workers()

    def delete_route(self, owner, table_id, destination):
        _check_route_table_id(table_id)
        with self.db.write() as session:
            vpc = self._vpc_of_table(session, owner, table_id)
            if destination != DEFAULT_ROUTE or not vpc.internet_route:
                raise NotFound('InvalidRoute.NotFound', f"The route '{destination}' does not exist in the route "
                                                        f"table '{table_id}'")
            vpc.internet_route = False
        self.wake_workers()

    def _vpc_of_table(self, session, owner, table_id):
        vpc = session.scalar(select(VpcRow).where(VpcRow.vpc_id == f'vpc-{table_id[4:]}', VpcRow.owner == owner,
                                                  VpcRow.state != DELETED).with_for_update())
        if vpc is None:
            raise NotFound('InvalidRouteTableID.NotFound', f"The routeTable ID '{table_id}' does not exist")
        return vpc


def public_addresses_allowed(session, network_id):
    """Whether the VPC of a subnet routes to an internet gateway (else elastic IPs are refused)."""
    return bool(session.scalar(select(VpcRow.internet_route).join(NetworkRow, NetworkRow.vpc_pk == VpcRow.id)
                               .join(GatewayRow, GatewayRow.vpc_pk == VpcRow.id)
                               .where(NetworkRow.id == network_id)))


def vpc_id_of_network(session, network_id):
    return session.scalar(select(VpcRow.vpc_id).join(NetworkRow, NetworkRow.vpc_pk == VpcRow.id)
                          .where(NetworkRow.id == network_id))


def _owned(session, owner, gateway_id):
    _check_gateway_id(gateway_id)
    row = session.scalar(select(GatewayRow).where(GatewayRow.gateway_id == gateway_id, GatewayRow.owner == owner)
                         .with_for_update())
    if row is None:
        raise NotFound('InvalidInternetGatewayID.NotFound', f"The internetGateway ID '{gateway_id}' does not exist")
    return row


def _vpc_id(session, vpc_pk):
    return session.scalar(select(VpcRow.vpc_id).where(VpcRow.id == vpc_pk))


def _check_gateway_id(gateway_id):
    if not is_resource_id(gateway_id, 'igw'):
        raise InvalidValue(f"Invalid id: '{gateway_id}'", code='InvalidInternetGatewayID.Malformed')


def _check_route_table_id(table_id):
    if not is_resource_id(table_id, 'rtb'):
        raise InvalidValue(f"Invalid id: '{table_id}'", code='InvalidRouteTableID.Malformed')


def _all_found(ids, found, code, noun):
    missing = sorted(set(ids or ()) - set(found))
    if missing:
        raise NotFound(code, f"The {noun} ID '{missing[0]}' does not exist")
