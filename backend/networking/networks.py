"""Virtual networks (EC2 subnets) and the IP+MAC leases instances hold on them.

A lease is taken in the transaction that creates the instance; the (network, address) unique
constraint makes a double lease impossible, and the network row is locked while picking so that
two processes never race for the same cursor.
"""
import dataclasses
import re

from sqlalchemy import func, select

from . import addressing
from .vpcs import attach_new_gateway, visible
from ..errors import Conflict, InvalidValue, NotFound
from ..models import CLOUD_ACCOUNT, Lease, Network as NetworkRow, Vpc as VpcRow, new_resource_id

PUBLIC_POOL = 'public'
_NETWORK_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,63}')


@dataclasses.dataclass(frozen=True)
class Network:
    network_id: int
    name: str
    subnet_id: str
    kind: str
    cidr: str
    gateway: str | None
    dns: str | None
    bridge: str | None
    vlan: int | None
    is_default: bool
    leased: int
    size: int

    @property
    def prefix_length(self):
        return int(self.cidr.split('/')[1])

    def as_json(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    interface_id: str
    ip: str
    mac: str


class NetworkService:
    def __init__(self, db, config):
        self.db = db
        self.config = config

    def ensure_defaults(self, public_cidr):
        """The elastic IP pool exists from the first start."""
        with self.db.write() as session:
            if session.scalar(select(NetworkRow.id).where(NetworkRow.name == PUBLIC_POOL)) is None:
                session.add(_new_row(PUBLIC_POOL, public_cidr, kind='public'))

    def create(self, name, cidr, gateway=None, dns=None, bridge=None, vlan=None):
        """An administrator's network: the one subnet of a shared VPC of the cloud, open to every account."""
        if not _NETWORK_NAME.fullmatch(name or ''):
            raise InvalidValue(f"'{name}' is not a valid network name")
        if vlan is not None and not 1 <= vlan <= 4094:
            raise InvalidValue('a VLAN id is between 1 and 4094')
        if bridge is not None and not re.fullmatch(r'[A-Za-z0-9_.-]{1,15}', bridge):
            raise InvalidValue(f"'{bridge}' is not a valid bridge name (15 characters at most)")
        row = _new_row(name, cidr, kind='private', gateway=gateway, dns=dns, bridge=bridge, vlan=vlan)
        with self.db.write() as session:
            if session.scalar(select(NetworkRow.id).where(NetworkRow.name == name)) is not None:
                raise Conflict('NetworkExists', f"A network named '{name}' already exists")
            vpc = VpcRow(vpc_id=new_resource_id('vpc'), owner=CLOUD_ACCOUNT, cidr=row.cidr, shared=True,
                         state='available', dns_support=True, dns_hostnames=False)
            session.add(vpc)
            session.flush()
            attach_new_gateway(session, vpc)
            row.vpc_pk, row.owner = vpc.id, CLOUD_ACCOUNT
            session.add(row)
        return self.get(name)

    def list(self):
        with self.db.read() as session:
            counts = dict(session.execute(select(Lease.network_id, func.count()).group_by(Lease.network_id)).all())
            return [_record(row, counts.get(row.id, 0)) for row in session.scalars(select(NetworkRow).order_by(NetworkRow.id))]

    def get(self, name):
        with self.db.read() as session:
            row = session.scalar(select(NetworkRow).where(NetworkRow.name == name))
            if row is None:
                raise NotFound('InvalidSubnetID.NotFound', f"The network '{name}' does not exist")
            leased = session.scalar(select(func.count()).select_from(Lease).where(Lease.network_id == row.id))
            return _record(row, leased)

    def by_id(self, session, network_id):
        return session.get(NetworkRow, network_id)

    # -- used inside the instance service's transactions --------------------------------------------

    def for_launch(self, session, owner, subnet_id):
        """The subnet a launch goes to, if `owner` may use it, locked for picking."""
        row = session.scalar(visible(select(NetworkRow).join(VpcRow, VpcRow.id == NetworkRow.vpc_pk), owner)
                             .where(NetworkRow.subnet_id == subnet_id, NetworkRow.kind == 'private')
                             .with_for_update(of=NetworkRow))
        if row is None:
            raise NotFound('InvalidSubnetID.NotFound', f"The subnet ID '{subnet_id}' does not exist")
        return row

    def zone_of(self, session, owner, subnet_id):
        """The zone of a subnet `owner` may use (None: any zone); refuses one it may not."""
        zone = session.execute(visible(select(NetworkRow.zone).join(VpcRow, VpcRow.id == NetworkRow.vpc_pk), owner)
                               .where(NetworkRow.subnet_id == subnet_id, NetworkRow.kind == 'private')).first()
        if zone is None:
            raise NotFound('InvalidSubnetID.NotFound', f"The subnet ID '{subnet_id}' does not exist")
        return zone[0]

    def default_subnet(self, session, vpc_id, zone):
        """The default subnet of a default VPC in `zone`, locked for picking, or None."""
        return session.scalar(select(NetworkRow).join(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
                              .where(VpcRow.vpc_id == vpc_id, NetworkRow.zone == zone,
                                     NetworkRow.is_default.is_(True)).with_for_update(of=NetworkRow))

    def lease(self, session, network_row, interface_ids, requested_ip=None, primary=True):
        """Lease one address per network interface on a locked network row (`requested_ip` for a
        single one); returns ([LeaseRecord], lease rows to insert once the interfaces exist)."""
        network = addressing.parse_network(network_row.cidr)
        first, last = addressing.usable_range(network)
        reserved = {address for address in reserved_addresses(network_row) if first <= address <= last}
        if requested_ip is not None:
            return _lease_requested(session, network_row, interface_ids, requested_ip, first, last, reserved, primary)
        leased = session.scalar(select(func.count()).select_from(Lease).where(Lease.network_id == network_row.id))

        def taken_between(low, high):
            rows = session.scalars(select(Lease.address).where(
                Lease.network_id == network_row.id, Lease.address >= low, Lease.address <= high))
            return set(rows) | {address for address in reserved if low <= address <= high}

        picked, cursor = addressing.pick_windowed(first, last, network_row.cursor, len(interface_ids), taken_between,
                                                  leased + len(reserved), label=f"network '{network_row.name}'")
        network_row.cursor = cursor
        records = []
        rows = []
        for interface_id, address in zip(interface_ids, picked):
            ip = addressing.to_text(address)
            mac = addressing.mac_for(ip)
            rows.append({'network_id': network_row.id, 'address': address, 'mac': mac,
                         'interface_id': interface_id, 'is_primary': primary})
            records.append(LeaseRecord(interface_id, ip, mac))
        return records, rows


def _lease_requested(session, network_row, interface_ids, text, first, last, reserved, primary):
    try:
        address = addressing.to_int(text)
    except ValueError:
        raise InvalidValue(f"Invalid value '{text}' for PrivateIpAddress") from None
    if not first <= address <= last or address in reserved:
        raise InvalidValue(f"Address {text} does not fall within the subnet's address range",
                           code='InvalidParameterValue')
    if session.scalar(select(Lease.id).where(Lease.network_id == network_row.id, Lease.address == address)):
        raise Conflict('InvalidIPAddress.InUse', f'Address {text} is in use.')
    (interface_id,) = interface_ids
    mac = addressing.mac_for(text)
    return ([LeaseRecord(interface_id, text, mac)],
            [{'network_id': network_row.id, 'address': address, 'mac': mac, 'interface_id': interface_id,
              'is_primary': primary}])


def reserved_addresses(row):
    """Addresses of a network never leased: its gateway and DNS, and in an account's subnets also
    AWS's .2 (DNS) and .3 (reserved)."""
    network = addressing.parse_network(row.cidr)
    reserved = set()
    for text in (row.gateway, *(row.dns or '').split(',')):
        text = (text or '').strip()
        if text:
            try:
                reserved.add(addressing.to_int(text))
            except ValueError:
                pass
    if row.owner not in (None, CLOUD_ACCOUNT):
        base = int(network.network_address)
        reserved |= {base + 1, base + 2, base + 3}
    return reserved


def _new_row(name, cidr, kind, gateway=None, dns=None, bridge=None, vlan=None, is_default=False):
    network = addressing.parse_network(cidr)
    first, _ = addressing.usable_range(network)
    if kind == 'private' and gateway is None:
        gateway = addressing.to_text(first)   # the first address, as on most networks
    if gateway is not None:
        try:
            if addressing.to_int(gateway) not in range(int(network.network_address), int(network.broadcast_address) + 1):
                raise InvalidValue(f'gateway {gateway} is outside {cidr}')
        except ValueError:
            raise InvalidValue(f"'{gateway}' is not an IPv4 address") from None
    return NetworkRow(name=name, subnet_id=new_resource_id('subnet'), kind=kind, cidr=str(network),
                      gateway=gateway, dns=dns, bridge=bridge, vlan=vlan, is_default=is_default,
                      cursor=0)


def _record(row, leased):
    network = addressing.parse_network(row.cidr)
    first, last = addressing.usable_range(network)
    return Network(row.id, row.name, row.subnet_id, row.kind, row.cidr, row.gateway, row.dns, row.bridge,
                   row.vlan, row.is_default, leased, last - first + 1)
