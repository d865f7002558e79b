"""Virtual networks (EC2 subnets) and the IP+MAC leases instances hold on them.

A lease is taken in the transaction that creates the instance; the (network, address) unique
constraint makes a double lease impossible, and the network row is locked while picking so that
two processes never race for the same cursor.
"""
import dataclasses
import re

from sqlalchemy import delete, func, select

from . import addressing
from .errors import Conflict, InvalidValue, NotFound
from .models import Lease, Network as NetworkRow, new_resource_id

DEFAULT_NETWORK = 'default'
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
    instance_id: str
    ip: str
    mac: str


class NetworkService:
    def __init__(self, db, config):
        self.db = db
        self.config = config

    def ensure_defaults(self, private_cidr, public_cidr):
        """The default private /20 and the elastic IP pool exist from the first start."""
        with self.db.write() as session:
            names = set(session.scalars(select(NetworkRow.name)))
            if DEFAULT_NETWORK not in names:
                session.add(_new_row(DEFAULT_NETWORK, private_cidr, kind='private', is_default=True))
            if PUBLIC_POOL not in names:
                session.add(_new_row(PUBLIC_POOL, public_cidr, kind='public'))

    def create(self, name, cidr, gateway=None, dns=None, bridge=None, vlan=None):
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

    def for_launch(self, session, subnet_id=None):
        """The network a launch goes to (the default, or the named subnet), locked for picking."""
        query = select(NetworkRow).where(NetworkRow.kind == 'private')
        if subnet_id:
            query = query.where(NetworkRow.subnet_id == subnet_id)
        else:
            query = query.where(NetworkRow.is_default.is_(True))
        row = session.scalar(query.with_for_update())
        if row is None:
            raise NotFound('InvalidSubnetID.NotFound', f"The subnet ID '{subnet_id}' does not exist")
        return row

    def lease(self, session, network_row, instance_ids):
        """Lease one address per instance on a locked network row; returns [LeaseRecord]."""
        network = addressing.parse_network(network_row.cidr)
        first, last = addressing.usable_range(network)
        reserved = {address for address in _reserved(network_row) if first <= address <= last}
        leased = session.scalar(select(func.count()).select_from(Lease).where(Lease.network_id == network_row.id))

        def taken_between(low, high):
            rows = session.scalars(select(Lease.address).where(
                Lease.network_id == network_row.id, Lease.address >= low, Lease.address <= high))
            return set(rows) | {address for address in reserved if low <= address <= high}

        picked, cursor = addressing.pick_windowed(first, last, network_row.cursor, len(instance_ids), taken_between,
                                                  leased + len(reserved), label=f"network '{network_row.name}'")
        network_row.cursor = cursor
        records = []
        rows = []
        for instance_id, address in zip(instance_ids, picked):
            ip = addressing.to_text(address)
            mac = addressing.mac_for(ip)
            rows.append({'network_id': network_row.id, 'address': address, 'mac': mac,
                         'instance_id': instance_id})
            records.append(LeaseRecord(instance_id, ip, mac))
        return records, rows

    def release(self, session, instance_ids):
        if instance_ids:
            session.execute(delete(Lease).where(Lease.instance_id.in_(list(instance_ids))))


def _reserved(network_row):
    reserved = set()
    for text in (network_row.gateway, *(network_row.dns or '').split(',')):
        text = (text or '').strip()
        if text:
            try:
                reserved.add(addressing.to_int(text))
            except ValueError:
                pass
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
