"""Per-account quotas: instances, vCPUs, elastic IPs, images, and storage (images, uploads, volumes).

Defaults come from the configuration ([quotas], and [images] account_quota for storage);
administrators override any of them for one account (`reservoir user set-quota`). Every check runs
inside the transaction that makes the allocation, after `lock_account`, so concurrent requests of
one account are decided one after the other and cannot together exceed a quota.

Instances and vCPUs count what holds a host's capacity (pending, running, stopping, rebooting,
shutting down, impaired): EC2's limits are on running instances, and starting a stopped instance
takes quota again, as it takes capacity again.
"""
import dataclasses

from sqlalchemy import delete, func, select

from .config import QuotaSettings
from .errors import BackendError, InvalidValue
from .lifecycle import HOLDS_CAPACITY
from .models import (AccountQuota, Address, Image as ImageRow, Instance as InstanceRow, Upload as UploadRow, User,
                     Volume as VolumeRow)

RESOURCES = ('instances', 'vcpus', 'elastic-ips', 'images', 'storage')


@dataclasses.dataclass(frozen=True)
class Quotas(QuotaSettings):
    """The limits of one account: the configured counts, and image storage in bytes."""
    storage: int = 100 * 1024 ** 3

    def get(self, resource):
        return getattr(self, _field(resource))


def load_defaults(config, storage):
    """The configuration's [quotas], with `storage` from [images] account_quota, which has always
    been the storage quota of an account."""
    return Quotas(**dataclasses.asdict(config.quotas), storage=storage)


def lock_account(session, owner):
    """Serialise the quota decisions of one account (PostgreSQL; SQLite writers are serial anyway)."""
    session.execute(select(User.id).where(User.account_id == owner).with_for_update())


def effective(session, defaults, owner):
    """The account's quotas: the defaults with its overrides."""
    overrides = dict(session.execute(select(AccountQuota.resource, AccountQuota.value)
                                     .where(AccountQuota.owner == owner)).all())
    return dataclasses.replace(defaults, **{_field(name): value for name, value in overrides.items()})


def set_overrides(session, owner, values):
    """values: {resource: count, or None to fall back to the default}."""
    for resource, value in values.items():
        if resource not in RESOURCES:
            raise InvalidValue(f'unknown quota {resource!r}: one of {", ".join(RESOURCES)}')
        session.execute(delete(AccountQuota).where(AccountQuota.owner == owner, AccountQuota.resource == resource))
        if value is not None:
            if value < 0:
                raise InvalidValue(f'the {resource} quota cannot be negative')
            session.add(AccountQuota(owner=owner, resource=resource, value=value))


def usage(session, owner, with_storage=False):
    """What the account holds now, by quota (image storage only when asked: it costs two sums)."""
    instances, vcpus = session.execute(
        select(func.count(), func.coalesce(func.sum(InstanceRow.vcpus), 0))
        .where(InstanceRow.owner == owner, InstanceRow.state.in_([state.value for state in HOLDS_CAPACITY]))).one()
    addresses = session.scalar(select(func.count()).select_from(Address).where(Address.owner == owner))
    images = session.scalar(select(func.count()).select_from(ImageRow).where(
        ImageRow.owner == owner, ImageRow.state.not_in(('deregistered', 'failed'))))
    held = {'instances': int(instances), 'vcpus': int(vcpus), 'elastic-ips': int(addresses), 'images': int(images)}
    if with_storage:
        held['storage'] = used_bytes(session, owner)
    return held


def used_bytes(session, owner, except_upload=None):
    """Bytes the account holds: unreclaimed image files, uploads (one upload may be left out), and
    volumes at their full size, written or not."""
    images = session.scalar(select(func.coalesce(func.sum(ImageRow.size_bytes), 0)).where(
        ImageRow.owner == owner, ImageRow.reclaimed_at.is_(None)))
    uploads = select(func.coalesce(func.sum(UploadRow.size_bytes), 0)).where(UploadRow.owner == owner)
    if except_upload is not None:
        uploads = uploads.where(UploadRow.upload_id != except_upload)
    volumes = session.scalar(select(func.coalesce(func.sum(VolumeRow.size_gib), 0)).where(VolumeRow.owner == owner))
    return int(images) + int(session.scalar(uploads)) + int(volumes) * 1024 ** 3


def instances_allowed(session, defaults, owner, wanted, minimum, vcpus_each):
    """How many of `wanted` instances (at least `minimum`) the account may start now; refuses below
    `minimum` with EC2's InstanceLimitExceeded or VcpuLimitExceeded."""
    limits, used = effective(session, defaults, owner), usage(session, owner)
    by_count = limits.instances - used['instances']
    by_vcpus = (limits.vcpus - used['vcpus']) // vcpus_each
    if by_count < minimum:
        raise _instance_limit(by_count, minimum)
    if by_vcpus < minimum:
        raise _vcpu_limit(limits, used, minimum * vcpus_each)
    return min(wanted, by_count, by_vcpus)


def check_more_instances(session, defaults, owner, count, vcpus):
    """Refuse when `count` more instances of `vcpus` vCPUs in all would exceed a quota (StartInstances)."""
    limits, used = effective(session, defaults, owner), usage(session, owner)
    if used['instances'] + count > limits.instances:
        raise _instance_limit(limits.instances - used['instances'], count)
    if used['vcpus'] + vcpus > limits.vcpus:
        raise _vcpu_limit(limits, used, vcpus)


def _instance_limit(room, requested):
    return BackendError('InstanceLimitExceeded', f'Your quota allows for {max(room, 0)} more running '
                                                 f'instance(s). You requested at least {requested}.')


def _vcpu_limit(limits, used, requested):
    return BackendError('VcpuLimitExceeded',
                        f'You have requested more vCPU capacity than your current vCPU limit of {limits.vcpus} '
                        f'allows for this account: {used["vcpus"]} are in use and {requested} were requested.')


def check_addresses(session, defaults, owner):
    limits, used = effective(session, defaults, owner), usage(session, owner)
    if used['elastic-ips'] >= limits.elastic_ips:
        raise BackendError('AddressLimitExceeded',
                           f'The maximum number of addresses has been reached ({limits.elastic_ips}).')


def check_images(session, defaults, owner):
    if session.scalar(select(User.id).where(User.account_id == owner)) is None:
        return      # the cloud's own images, registered by administrators
    limits, used = effective(session, defaults, owner), usage(session, owner)
    if used['images'] >= limits.images:
        raise BackendError('ResourceLimitExceeded',
                           f'You have reached the quota of {limits.images} images for this account; '
                           'deregister images first.')


def storage_limit(session, defaults_storage, owner):
    """The account's image storage quota in bytes."""
    override = session.scalar(select(AccountQuota.value).where(AccountQuota.owner == owner,
                                                               AccountQuota.resource == 'storage'))
    return defaults_storage if override is None else override


def _field(resource):
    if resource not in RESOURCES:
        raise InvalidValue(f'unknown quota {resource!r}')
    return resource.replace('-', '_')


class QuotaService:
    """Quotas as administrators and DescribeAccountAttributes see them."""

    def __init__(self, db, defaults):
        self.db = db
        self.defaults = defaults

    def of(self, owner):
        """(effective Quotas, usage by resource) of an account."""
        with self.db.read() as session:
            return effective(session, self.defaults, owner), usage(session, owner, with_storage=True)

    def set(self, owner, values):
        """Override quotas of an account; a value of None returns that quota to the default."""
        with self.db.write() as session:
            set_overrides(session, owner, values)
