"""Network interfaces (eni-): a MAC and addresses in one subnet, attached to at most one instance.

Every instance's eth0 is an interface made with it and deleted with it. Others are created in a
subnet, attached to an instance of the same VPC and zone at a free device index (1 to 7), detached
and deleted by their owner. Attaching and detaching record what the host must do
(`attachment_status` 'attaching' / 'detaching'); the worker that drives the instance's host plugs or
unplugs the NIC of a running instance and then records 'attached', or forgets the attachment.
An interface's first lease is its primary address; AssignPrivateIpAddresses adds secondary ones.
"""
import dataclasses
import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..drivers.base import Feature
from ..errors import Conflict, InvalidValue, NotFound
from ..hosts import require_feature
from ..lifecycle import ec2_state
from ..models import (Address as AddressRow, Instance as InstanceRow, InterfaceGroup, Lease, Network as NetworkRow,
                      NetworkInterface as InterfaceRow, Tag, Vpc as VpcRow, is_resource_id, new_resource_id, utcnow)
from . import addressing
from .security_groups import groups_for, groups_of_interfaces, join_groups
from .subnets import check_subnet_id

MAX_INTERFACES = 8              # device indexes 0 to 7: what the stock image's agent configures
MAX_ADDRESSES_PER_INTERFACE = 10
ATTACHING, ATTACHED, DETACHING = 'attaching', 'attached', 'detaching'


@dataclasses.dataclass(frozen=True)
class Interface:
    interface_id: str
    owner: str
    subnet_id: str
    vpc_id: str | None
    zone: str | None
    mac: str
    description: str
    source_dest_check: bool
    instance_id: str | None
    device_index: int | None
    attachment_id: str | None
    attachment_status: str | None
    attached_at: datetime.datetime | None
    delete_on_termination: bool
    addresses: tuple            # ((ip, is_primary), …), the primary first
    created_at: datetime.datetime
    public_ips: tuple = ()      # ((private ip, elastic IP, association id), …)
    groups: tuple = ()          # ((group id, group name), …)

    @property
    def private_ip(self):
        return self.addresses[0][0] if self.addresses else None

    @property
    def status(self):
        return 'in-use' if self.instance_id else 'available'


def new_interface_row(owner, network_id, lease, instance_id, device_index, now, delete_on_termination):
    """The values of an interface attached at launch (for a bulk insert)."""
    return {'interface_id': lease.interface_id, 'owner': owner, 'network_id': network_id, 'mac': lease.mac,
            'description': '', 'source_dest_check': True, 'instance_id': instance_id, 'device_index': device_index,
            'attachment_id': new_resource_id('eni-attach'), 'attached_at': now, 'attachment_status': ATTACHED,
            'delete_on_termination': delete_on_termination, 'wants_public_ip': False, 'created_at': now}


def release_interfaces(session, instance_id):
    """An instance ended: its interfaces marked so go (with their leases), the others are detached."""
    doomed = select(InterfaceRow.interface_id).where(InterfaceRow.instance_id == instance_id,
                                                     InterfaceRow.delete_on_termination.is_(True))
    session.execute(update(AddressRow).where(AddressRow.interface_id.in_(doomed))
                    .values(interface_id=None, private_ip=None, association_id=None))
    session.execute(delete(Lease).where(Lease.interface_id.in_(doomed)))
    session.execute(delete(InterfaceGroup).where(InterfaceGroup.interface_id.in_(doomed)))
    session.execute(delete(Tag).where(Tag.resource_id.in_(doomed)))
    session.execute(delete(InterfaceRow).where(InterfaceRow.instance_id == instance_id,
                                               InterfaceRow.delete_on_termination.is_(True)))
    session.execute(update(InterfaceRow).where(InterfaceRow.instance_id == instance_id).values(
        instance_id=None, device_index=None, attachment_id=None, attached_at=None, attachment_status=None))


class InterfaceService:
    def __init__(self, db, networks, wake_workers=None, groups_per_interface=None):
        self.db = db
        self.networks = networks
        self.groups_per_interface = groups_per_interface
        self.wake_workers = wake_workers or (lambda: None)

    def create(self, owner, subnet_id, private_ip=None, description='', client_token=None, group_ids=()):
        """CreateNetworkInterface; returns (Interface, made now?) — a repeated `client_token` gets the
        interface its first call made."""
        check_subnet_id(subnet_id)
        _check_description(description)
        earlier = self._earlier(owner, client_token, subnet_id)
        if earlier is not None:
            return earlier, False
        try:
            return self._create(owner, subnet_id, private_ip, description, client_token, group_ids), True
        except IntegrityError:
            earlier = self._earlier(owner, client_token, subnet_id)   # a concurrent retry came first
            if earlier is None:
                raise
            return earlier, False

    def _earlier(self, owner, client_token, subnet_id):
        if not client_token:
            return None
        with self.db.read() as session:
            found = session.execute(select(InterfaceRow.interface_id, NetworkRow.subnet_id)
                                    .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
                                    .where(InterfaceRow.owner == owner, InterfaceRow.client_token == client_token)).first()
        if found is None:
            return None
        if found.subnet_id != subnet_id:
            raise Conflict('IdempotentParameterMismatch', 'The client token was already used with different '
                                                          'parameters.')
        return self.describe(owner, [found.interface_id])[0]

    def _create(self, owner, subnet_id, private_ip, description, client_token, group_ids):
        with self.db.write() as session:
            network = self.networks.for_launch(session, owner, subnet_id)
            interface_id = new_resource_id('eni')
            (lease,), rows = self.networks.lease(session, network, [interface_id], private_ip)
            session.add(InterfaceRow(interface_id=interface_id, owner=owner, network_id=network.id, mac=lease.mac,
                                     description=description or '', source_dest_check=True,
                                     delete_on_termination=False, client_token=client_token))
            session.flush()
            session.execute(Lease.__table__.insert(), rows)
            join_groups(session, [{'interface_id': interface_id, 'group_id': group_id}
                                  for group_id in groups_for(session, owner, network.vpc_pk, group_ids,
                                                             limit=self.groups_per_interface)])
        return self.describe(owner, [interface_id])[0]

    def delete(self, owner, interface_id):
        check_interface_id(interface_id)
        with self.db.write() as session:
            row = _owned(session, owner, interface_id)
            if row.instance_id:
                raise Conflict('InvalidNetworkInterface.InUse', f"The network interface '{interface_id}' is "
                                                                'currently in use.')
            session.execute(update(AddressRow).where(AddressRow.interface_id == interface_id)
                            .values(interface_id=None, private_ip=None, association_id=None))
            session.execute(delete(Lease).where(Lease.interface_id == interface_id))
            session.execute(delete(InterfaceGroup).where(InterfaceGroup.interface_id == interface_id))
            session.delete(row)

    def describe(self, owner, ids=None, after=None, limit=None):
        """The owner's interfaces by id; `after`/`limit` cut one page of the listing in the database."""
        for interface_id in ids or ():
            check_interface_id(interface_id)
        with self.db.read() as session:
            query = (select(InterfaceRow, NetworkRow.subnet_id, NetworkRow.zone, VpcRow.vpc_id)
                     .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
                     .outerjoin(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
                     .where(InterfaceRow.owner == owner).order_by(InterfaceRow.interface_id))
            if ids:
                query = query.where(InterfaceRow.interface_id.in_(list(dict.fromkeys(ids))))
            if after is not None:
                query = query.where(InterfaceRow.interface_id > after)
            if limit is not None:
                query = query.limit(limit)
            rows = session.execute(query).all()
            addresses = _addresses_of(session, [row.interface_id for row, *_ in rows])
            public = _public_ips_of(session, [row.interface_id for row, *_ in rows])
            groups = groups_of_interfaces(session, [row.interface_id for row, *_ in rows])
        records = [_record(row, subnet_id, zone, vpc_id, addresses.get(row.interface_id, ()),
                           public.get(row.interface_id, ()), groups.get(row.interface_id, ()))
                   for row, subnet_id, zone, vpc_id in rows]
        if ids:
            missing = sorted(set(ids) - {record.interface_id for record in records})
            if missing:
                raise NotFound('InvalidNetworkInterfaceID.NotFound',
                               f"The networkInterface ID '{missing[0]}' does not exist")
        return records

    def attach(self, owner, interface_id, instance_id, device_index):
        check_interface_id(interface_id)
        if not 1 <= device_index < MAX_INTERFACES:
            raise InvalidValue(f'The device index must be between 1 and {MAX_INTERFACES - 1} here.')
        with self.db.write() as session:
            row = _owned(session, owner, interface_id)
            instance = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == instance_id,
                                                                InstanceRow.owner == owner).with_for_update())
            if instance is None:
                raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
            if ec2_state(instance.state)[0] in ('shutting-down', 'terminated'):
                raise Conflict('IncorrectInstanceState', f"The instance '{instance_id}' is not in a valid state "
                                                         'for this operation.')
            if row.instance_id:
                raise Conflict('InvalidNetworkInterface.InUse', f"Interface: [{interface_id}] in use.")
            require_feature(session, instance, Feature.NIC_HOTPLUG, 'take network interfaces of this cloud')
            _check_same_vpc_and_zone(session, row, instance)
            taken = session.scalar(select(InterfaceRow.interface_id).where(
                InterfaceRow.instance_id == instance_id, InterfaceRow.device_index == device_index))
            if taken:
                raise InvalidValue(f"Instance '{instance_id}' already has an interface attached at device index "
                                   f"'{device_index}'.")
            row.instance_id, row.device_index = instance_id, device_index
            row.attachment_id, row.attached_at = new_resource_id('eni-attach'), utcnow()
            row.attachment_status = ATTACHING
            attachment_id = row.attachment_id
        self.wake_workers()
        return attachment_id

    def detach(self, owner, attachment_id):
        if not is_resource_id(attachment_id, 'eni-attach'):
            raise InvalidValue(f"Invalid id: '{attachment_id}'", code='InvalidAttachmentID.Malformed')
        with self.db.write() as session:
            row = session.scalar(select(InterfaceRow).where(InterfaceRow.attachment_id == attachment_id,
                                                            InterfaceRow.owner == owner).with_for_update())
            if row is None:
                raise NotFound('InvalidAttachmentID.NotFound', f"The attachment ID '{attachment_id}' does not exist")
            if row.device_index == 0:
                raise Conflict('OperationNotPermitted', 'The network interface at device index 0 cannot be '
                                                        'detached.')
            row.attachment_status = DETACHING
        self.wake_workers()

    def modify(self, owner, interface_id, description=None, source_dest_check=None):
        check_interface_id(interface_id)
        if description is not None:
            _check_description(description)
        with self.db.write() as session:
            row = _owned(session, owner, interface_id)
            if description is not None:
                row.description = description
            if source_dest_check is not None:
                row.source_dest_check = bool(source_dest_check)

    def assign_addresses(self, owner, interface_id, addresses=(), count=None):
        """AssignPrivateIpAddresses: the given secondary addresses, or `count` more picked round-robin."""
        check_interface_id(interface_id)
        if bool(addresses) == bool(count):
            raise InvalidValue('Give either private IP addresses or a count of them',
                               code='InvalidParameterCombination')
        with self.db.write() as session:
            row = _owned(session, owner, interface_id)
            held = session.scalar(select(func.count()).select_from(Lease).where(Lease.interface_id == interface_id))
            wanted = len(addresses) or count
            if held + wanted > MAX_ADDRESSES_PER_INTERFACE:
                raise InvalidValue(f'An interface holds at most {MAX_ADDRESSES_PER_INTERFACE} addresses here.',
                                   code='PrivateIpAddressLimitExceeded')
            network = session.scalar(select(NetworkRow).where(NetworkRow.id == row.network_id).with_for_update())
            rows = []
            if addresses:
                for address in addresses:
                    rows += self.networks.lease(session, network, [interface_id], address, primary=False)[1]
                    session.execute(Lease.__table__.insert(), rows[-1:])
            else:
                _, rows = self.networks.lease(session, network, [interface_id] * count, primary=False)
                session.execute(Lease.__table__.insert(), rows)
        return [addressing.to_text(lease['address']) for lease in rows]

    def unassign_addresses(self, owner, interface_id, addresses):
        check_interface_id(interface_id)
        with self.db.write() as session:
            _owned(session, owner, interface_id)
            held = dict(session.execute(select(Lease.address, Lease.is_primary).where(
                Lease.interface_id == interface_id)).all())
            for text in addresses:
                try:
                    address = addressing.to_int(text)
                except ValueError:
                    raise InvalidValue(f"Invalid value '{text}' for PrivateIpAddress") from None
                if address not in held or held[address]:
                    raise InvalidValue(f'Some of the specified addresses are not assigned to interface '
                                       f'{interface_id}', code='InvalidParameterValue')
            session.execute(update(AddressRow).where(AddressRow.interface_id == interface_id,
                                                     AddressRow.private_ip.in_(list(addresses)))
                            .values(interface_id=None, private_ip=None, association_id=None))
            session.execute(delete(Lease).where(Lease.interface_id == interface_id,
                                                Lease.address.in_([addressing.to_int(a) for a in addresses])))

    def by_instance(self, instance_ids):
        """{instance_id: [Interface, …] by device index}, for listings of instances."""
        ids = list(instance_ids)
        result = {}
        with self.db.read() as session:
            for start in range(0, len(ids), 900):
                result.update(self.of_instances(session, ids[start:start + 900]))
        return result

    def of_instances(self, session, instance_ids):
        """{instance_id: [Interface, …] by device index}, read in the caller's session."""
        rows = session.execute(select(InterfaceRow, NetworkRow.subnet_id, NetworkRow.zone, VpcRow.vpc_id)
                               .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
                               .outerjoin(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
                               .where(InterfaceRow.instance_id.in_(list(instance_ids)))
                               .order_by(InterfaceRow.instance_id, InterfaceRow.device_index)).all()
        addresses = _addresses_of(session, [row.interface_id for row, *_ in rows])
        public = _public_ips_of(session, [row.interface_id for row, *_ in rows])
        groups = groups_of_interfaces(session, [row.interface_id for row, *_ in rows])
        result = {}
        for row, subnet_id, zone, vpc_id in rows:
            result.setdefault(row.instance_id, []).append(
                _record(row, subnet_id, zone, vpc_id, addresses.get(row.interface_id, ()),
                        public.get(row.interface_id, ()), groups.get(row.interface_id, ())))
        return result


def check_interface_id(interface_id):
    if not is_resource_id(interface_id, 'eni'):
        raise InvalidValue(f"Invalid id: '{interface_id}'", code='InvalidNetworkInterfaceID.Malformed')


def _check_description(description):
    if description is not None and len(description) > 255:
        raise InvalidValue('A description is at most 255 characters long')


def _owned(session, owner, interface_id):
    row = session.scalar(select(InterfaceRow).where(InterfaceRow.interface_id == interface_id,
                                                    InterfaceRow.owner == owner).with_for_update())
    if row is None:
        raise NotFound('InvalidNetworkInterfaceID.NotFound', f"The networkInterface ID '{interface_id}' does not exist")
    return row


def _check_same_vpc_and_zone(session, interface, instance):
    subnets = {row.id: row for row in session.scalars(select(NetworkRow).where(
        NetworkRow.id.in_([interface.network_id, instance.network_id])))}
    own, theirs = subnets[interface.network_id], subnets.get(instance.network_id)
    if theirs is None or own.vpc_pk != theirs.vpc_pk:
        raise InvalidValue('The network interface and the instance are not in the same VPC.',
                           code='InvalidParameterCombination')
    if own.zone and own.zone != instance.zone:
        raise InvalidValue('The network interface and the instance are not in the same availability zone.',
                           code='InvalidParameterCombination')


def _addresses_of(session, interface_ids):
    """{interface_id: ((ip, is_primary), …)} with the primary first."""
    result = {}
    for start in range(0, len(interface_ids), 900):
        chunk = interface_ids[start:start + 900]
        for interface_id, address, primary in session.execute(
                select(Lease.interface_id, Lease.address, Lease.is_primary).where(Lease.interface_id.in_(chunk))
                .order_by(Lease.interface_id, Lease.is_primary.desc(), Lease.address)):
            result.setdefault(interface_id, []).append((addressing.to_text(address), primary))
    return {key: tuple(value) for key, value in result.items()}


def _public_ips_of(session, interface_ids):
    """{interface_id: ((private ip, elastic IP, association id), …)}."""
    result = {}
    for start in range(0, len(interface_ids), 900):
        for interface_id, private_ip, public_ip, association_id in session.execute(
                select(AddressRow.interface_id, AddressRow.private_ip, AddressRow.public_ip, AddressRow.association_id)
                .where(AddressRow.interface_id.in_(interface_ids[start:start + 900]))):
            result.setdefault(interface_id, []).append((private_ip, public_ip, association_id))
    return {key: tuple(value) for key, value in result.items()}


def _record(row, subnet_id, zone, vpc_id, addresses, public_ips=(), groups=()):
    return Interface(row.interface_id, row.owner, subnet_id, vpc_id, zone, row.mac, row.description,
                     row.source_dest_check, row.instance_id, row.device_index, row.attachment_id,
                     row.attachment_status, row.attached_at, row.delete_on_termination, tuple(addresses),
                     row.created_at, tuple(public_ips), tuple(groups))
