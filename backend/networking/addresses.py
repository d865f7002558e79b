"""Elastic IPs: allocated from the public pool, associated with one private address of one network
interface at a time, and following that interface from instance to instance.

Both styles clients use are served: VPC style by AllocationId / AssociationId (boto3), and classic
style by PublicIp (euca2ools). Associating with an instance means its eth0's primary address; the
address on eth0 also shows as the instance's public IP. A VPC without a routed internet gateway
takes no elastic IP (Gateway.NotAttached).
"""
import dataclasses

from sqlalchemy import delete, select, update

from ..drivers.base import Feature
from ..errors import Conflict, InvalidValue, NotFound
from ..hosts import require_feature
from ..lifecycle import ec2_state
from ..models import (CLOUD_ACCOUNT, Address as AddressRow, Instance as InstanceRow, Lease, Network as NetworkRow,
                      NetworkInterface as InterfaceRow, new_resource_id)
from ..quotas import Quotas, check_addresses, lock_account
from . import addressing
from .gateways import public_addresses_allowed, vpc_id_of_network
from .networks import PUBLIC_POOL


@dataclasses.dataclass(frozen=True)
class Address:
    allocation_id: str
    public_ip: str
    owner: str
    instance_id: str | None
    association_id: str | None
    private_ip: str | None
    interface_id: str | None


class AddressService:
    def __init__(self, db, wake_workers=None, quotas=None):
        self.db = db
        self.wake_workers = wake_workers or (lambda: None)
        self.quotas = quotas or Quotas()

    def allocate(self, owner):
        with self.db.write() as session:
            lock_account(session, owner)
            check_addresses(session, self.quotas, owner)
            (public_ip,) = _pick_public(session, 1)
            row = AddressRow(allocation_id=new_resource_id('eipalloc'), public_ip=public_ip, owner=owner)
            session.add(row)
            session.flush()
            return _record(row, None)

    def associate(self, owner, instance_id=None, allocation_id=None, public_ip=None, allow_reassociation=True,
                  interface_id=None, private_ip=None):
        """Associate with an instance (its eth0) or an interface, at `private_ip` or its primary address."""
        with self.db.write() as session:
            row = _find(session, owner, allocation_id, public_ip)
            interface = _target_interface(session, owner, instance_id, interface_id)
            private_ip = _private_address(session, interface, private_ip)
            if not public_addresses_allowed(session, interface.network_id):
                raise Conflict('Gateway.NotAttached', f'Network {vpc_id_of_network(session, interface.network_id)} '
                                                      'is not attached to any internet gateway')
            moving = row.interface_id and (row.interface_id, row.private_ip) != (interface.interface_id, private_ip)
            if moving and not allow_reassociation:
                raise Conflict('Resource.AlreadyAssociated', f'The address {row.public_ip} is already associated.')
            touched = {_instance_of(session, row.interface_id), interface.instance_id}
            _detach(session, row)
            previous = session.scalar(select(AddressRow).where(AddressRow.interface_id == interface.interface_id,
                                                               AddressRow.private_ip == private_ip))
            if previous is not None and previous.auto_assigned:
                session.delete(previous)        # an elastic IP replaces the public IP given at launch
            elif previous is not None:
                _detach(session, previous)      # one elastic IP per private address: the new one replaces it
            session.flush()
            row.interface_id, row.private_ip = interface.interface_id, private_ip
            row.association_id = new_resource_id('eipassoc')
            association_id = row.association_id
            session.flush()
            for touched_id in touched - {None}:
                sync_public_ip(session, touched_id)
        self.wake_workers()
        return association_id

    def disassociate(self, owner, association_id=None, public_ip=None):
        with self.db.write() as session:
            if association_id:
                row = session.scalar(select(AddressRow).where(AddressRow.association_id == association_id,
                                                              AddressRow.owner == owner))
                if row is None:
                    raise NotFound('InvalidAssociationID.NotFound',
                                   f"The association ID '{association_id}' does not exist")
            else:
                row = _find(session, owner, None, public_ip)
            _detach_and_sync(session, row)
        self.wake_workers()

    def release(self, owner, allocation_id=None, public_ip=None):
        with self.db.write() as session:
            row = _find(session, owner, allocation_id, public_ip)
            if row.interface_id and allocation_id:
                # VPC style refuses to release an address in use; classic style disassociates first.
                raise Conflict('InvalidIPAddress.InUse', f'The address {row.public_ip} is in use.')
            _detach_and_sync(session, row)
            session.delete(row)
        self.wake_workers()

    def describe(self, owner, public_ips=None, allocation_ids=None):
        with self.db.read() as session:
            rows = session.execute(select(AddressRow, InterfaceRow.instance_id)
                                   .outerjoin(InterfaceRow, InterfaceRow.interface_id == AddressRow.interface_id)
                                   .where(AddressRow.owner == owner).order_by(AddressRow.public_ip)).all()
        records = [_record(row, instance_id) for row, instance_id in rows]
        for wanted, attribute, code in ((public_ips, 'public_ip', 'InvalidAddress.NotFound'),
                                        (allocation_ids, 'allocation_id', 'InvalidAllocationID.NotFound')):
            if wanted:
                found = {getattr(record, attribute) for record in records}
                missing = [value for value in wanted if value not in found]
                if missing:
                    raise NotFound(code, f"Address '{missing[0]}' not found.")
                records = [record for record in records if getattr(record, attribute) in wanted]
        return records


def assign_public_ips(session, instance_ids):
    """Give each instance's eth0, if it wants one and its VPC routes to an internet gateway, a public
    IP from the pool (at launch and at every start), in the caller's transaction."""
    wanted = session.execute(
        select(InterfaceRow.interface_id, InterfaceRow.instance_id, InterfaceRow.network_id, Lease.address)
        .join(Lease, (Lease.interface_id == InterfaceRow.interface_id) & Lease.is_primary.is_(True))
        .where(InterfaceRow.instance_id.in_(list(instance_ids)), InterfaceRow.device_index == 0,
               InterfaceRow.wants_public_ip.is_(True))).all()
    wanted = [row for row in wanted if public_addresses_allowed(session, row.network_id)
              and not session.scalar(select(AddressRow.allocation_id).where(AddressRow.interface_id == row.interface_id))]
    if not wanted:
        return
    for row, public_ip in zip(wanted, _pick_public(session, len(wanted))):
        session.add(AddressRow(allocation_id=new_resource_id('eipalloc'), public_ip=public_ip, owner=CLOUD_ACCOUNT,
                               interface_id=row.interface_id, private_ip=addressing.to_text(row.address),
                               auto_assigned=True, association_id=new_resource_id('eipassoc')))
        session.execute(update(InstanceRow).where(InstanceRow.instance_id == row.instance_id)
                        .values(public_ip=public_ip))


def release_public_ips(session, instance_id):
    """An instance stopped or ended: the public IPs it was given at launch go back to the pool."""
    session.execute(delete(AddressRow).where(AddressRow.auto_assigned.is_(True), AddressRow.interface_id.in_(
        select(InterfaceRow.interface_id).where(InterfaceRow.instance_id == instance_id))))
    sync_public_ip(session, instance_id)


def _pick_public(session, count):
    pool = session.scalar(select(NetworkRow).where(NetworkRow.name == PUBLIC_POOL).with_for_update())
    network = addressing.parse_network(pool.cidr)
    first, last = addressing.usable_range(network)
    taken = {addressing.to_int(ip) for ip in session.scalars(select(AddressRow.public_ip))}
    picked, pool.cursor = addressing.pick(first, last, pool.cursor, taken, count, label='public IP pool')
    return [addressing.to_text(address) for address in picked]


def sync_public_ip(session, instance_id):
    """The instance's public IP: the elastic IP on its eth0's primary address, or none."""
    public_ip = session.scalar(
        select(AddressRow.public_ip)
        .join(InterfaceRow, InterfaceRow.interface_id == AddressRow.interface_id)
        .join(Lease, (Lease.interface_id == InterfaceRow.interface_id) & Lease.is_primary.is_(True))
        .where(InterfaceRow.instance_id == instance_id, InterfaceRow.device_index == 0))
    session.execute(update(InstanceRow).where(InstanceRow.instance_id == instance_id).values(public_ip=public_ip))


def _target_interface(session, owner, instance_id, interface_id):
    if interface_id:
        if instance_id:
            raise InvalidValue('Give an instance or a network interface, not both',
                               code='InvalidParameterCombination')
        row = session.scalar(select(InterfaceRow).where(InterfaceRow.interface_id == interface_id,
                                                        InterfaceRow.owner == owner))
        if row is None:
            raise NotFound('InvalidNetworkInterfaceID.NotFound',
                           f"The networkInterface ID '{interface_id}' does not exist")
        return row
    if not instance_id:
        raise InvalidValue('Either InstanceId or NetworkInterfaceId must be given', code='MissingParameter')
    instance = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == instance_id,
                                                        InstanceRow.owner == owner))
    if instance is None:
        raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
    eth0 = session.scalar(select(InterfaceRow).where(InterfaceRow.instance_id == instance_id,
                                                     InterfaceRow.device_index == 0))
    require_feature(session, instance, Feature.LOCAL_NETWORK, 'take elastic IPs of this cloud')
    if ec2_state(instance.state)[0] in ('shutting-down', 'terminated') or eth0 is None:
        raise Conflict('IncorrectInstanceState', f"The instance '{instance_id}' is not in a valid state "
                                                 'for this operation.')
    return eth0


def _private_address(session, interface, private_ip):
    held = dict(session.execute(select(Lease.address, Lease.is_primary)
                                .where(Lease.interface_id == interface.interface_id)).all())
    if private_ip is None:
        return addressing.to_text(next(address for address, primary in held.items() if primary))
    try:
        wanted = addressing.to_int(private_ip)
    except ValueError:
        raise InvalidValue(f"Invalid value '{private_ip}' for PrivateIpAddress") from None
    if wanted not in held:
        raise InvalidValue(f'The private IP address {private_ip} is not assigned to {interface.interface_id}',
                           code='InvalidParameterValue')
    return private_ip


def _instance_of(session, interface_id):
    if interface_id is None:
        return None
    return session.scalar(select(InterfaceRow.instance_id).where(InterfaceRow.interface_id == interface_id))


def _find(session, owner, allocation_id, public_ip):
    if allocation_id:
        row = session.scalar(select(AddressRow).where(AddressRow.allocation_id == allocation_id,
                                                      AddressRow.owner == owner))
        if row is None:
            raise NotFound('InvalidAllocationID.NotFound', f"The allocation ID '{allocation_id}' does not exist")
        return row
    if public_ip:
        row = session.scalar(select(AddressRow).where(AddressRow.public_ip == public_ip, AddressRow.owner == owner))
        if row is None:
            raise NotFound('InvalidAddress.NotFound', f"Address '{public_ip}' not found.")
        return row
    raise InvalidValue('Either AllocationId or PublicIp must be given', code='MissingParameter')


def _detach(session, row):
    row.interface_id = row.private_ip = row.association_id = None


def _detach_and_sync(session, row):
    instance_id = _instance_of(session, row.interface_id)
    _detach(session, row)
    session.flush()
    if instance_id:
        sync_public_ip(session, instance_id)


def _record(row, instance_id):
    return Address(row.allocation_id, row.public_ip, row.owner, instance_id, row.association_id, row.private_ip,
                   row.interface_id)
