"""Elastic IPs: allocated from the public pool, associated with one instance at a time.

Both styles clients use are served: VPC style by AllocationId / AssociationId (boto3), and classic
style by PublicIp (euca2ools). The associated address shows as the instance's public IP.
"""
import dataclasses

from sqlalchemy import select, update

from . import addressing
from ..errors import Conflict, InvalidValue, NotFound
from ..lifecycle import ec2_state
from ..quotas import Quotas, check_addresses, lock_account
from ..models import Address as AddressRow, Instance as InstanceRow, Network as NetworkRow, new_resource_id
from .networks import PUBLIC_POOL


@dataclasses.dataclass(frozen=True)
class Address:
    allocation_id: str
    public_ip: str
    owner: str
    instance_id: str | None
    association_id: str | None
    private_ip: str | None


class AddressService:
    def __init__(self, db, wake_workers=None, quotas=None):
        self.db = db
        self.wake_workers = wake_workers or (lambda: None)
        self.quotas = quotas or Quotas()

    def allocate(self, owner):
        with self.db.write() as session:
            lock_account(session, owner)
            check_addresses(session, self.quotas, owner)
            pool = session.scalar(select(NetworkRow).where(NetworkRow.name == PUBLIC_POOL).with_for_update())
            network = addressing.parse_network(pool.cidr)
            first, last = addressing.usable_range(network)
            taken = {addressing.to_int(ip) for ip in session.scalars(select(AddressRow.public_ip))}
            (address,), pool.cursor = addressing.pick(first, last, pool.cursor, taken, 1,
                                                      label='elastic IP pool')
            row = AddressRow(allocation_id=new_resource_id('eipalloc'), public_ip=addressing.to_text(address),
                             owner=owner)
            session.add(row)
            session.flush()
            return _record(row, None)

    def associate(self, owner, instance_id, allocation_id=None, public_ip=None, allow_reassociation=True):
        with self.db.write() as session:
            row = _find(session, owner, allocation_id, public_ip)
            instance = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == instance_id,
                                                                InstanceRow.owner == owner))
            if instance is None:
                raise NotFound('InvalidInstanceID.NotFound', f"The instance ID '{instance_id}' does not exist")
            if ec2_state(instance.state)[0] in ('shutting-down', 'terminated'):
                raise Conflict('IncorrectInstanceState', f"The instance '{instance_id}' is not in a valid state "
                                                         'for this operation.')
            if row.instance_id and row.instance_id != instance_id and not allow_reassociation:
                raise Conflict('Resource.AlreadyAssociated',
                               f'The address {row.public_ip} is already associated with {row.instance_id}')
            _detach(session, row)
            previous = session.scalar(select(AddressRow).where(AddressRow.instance_id == instance_id))
            if previous is not None:
                _detach(session, previous)
            session.flush()
            row.instance_id = instance_id
            row.association_id = new_resource_id('eipassoc')
            instance.public_ip = row.public_ip
            association_id = row.association_id
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
            _detach(session, row)
        self.wake_workers()

    def release(self, owner, allocation_id=None, public_ip=None):
        with self.db.write() as session:
            row = _find(session, owner, allocation_id, public_ip)
            if row.instance_id and allocation_id:
                # VPC style refuses to release an address in use; classic style disassociates first.
                raise Conflict('InvalidIPAddress.InUse', f'The address {row.public_ip} is in use.')
            _detach(session, row)
            session.delete(row)
        self.wake_workers()

    def describe(self, owner, public_ips=None, allocation_ids=None):
        with self.db.read() as session:
            rows = session.execute(select(AddressRow, InstanceRow.private_ip)
                                   .outerjoin(InstanceRow, InstanceRow.instance_id == AddressRow.instance_id)
                                   .where(AddressRow.owner == owner).order_by(AddressRow.public_ip)).all()
        records = [_record(row, private_ip) for row, private_ip in rows]
        for wanted, attribute, code in ((public_ips, 'public_ip', 'InvalidAddress.NotFound'),
                                        (allocation_ids, 'allocation_id', 'InvalidAllocationID.NotFound')):
            if wanted:
                found = {getattr(record, attribute) for record in records}
                missing = [value for value in wanted if value not in found]
                if missing:
                    raise NotFound(code, f"Address '{missing[0]}' not found.")
                records = [record for record in records if getattr(record, attribute) in wanted]
        return records

    def associations(self, session):
        """{public_ip: private_ip} of every association: what hosts must NAT."""
        return dict(session.execute(select(AddressRow.public_ip, InstanceRow.private_ip)
                                    .join(InstanceRow, InstanceRow.instance_id == AddressRow.instance_id)).all())


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
    if row.instance_id:
        session.execute(update(InstanceRow).where(InstanceRow.instance_id == row.instance_id).values(public_ip=None))
    row.instance_id = None
    row.association_id = None


def _record(row, private_ip):
    return Address(row.allocation_id, row.public_ip, row.owner, row.instance_id, row.association_id, private_ip)
