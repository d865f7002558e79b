"""Image storage over time: how much each account may hold, and when an image's file goes.

An image's file lives from the moment it is stored until the image is deregistered *and* no instance
uses it any more: a live instance's overlay reads it as its backing file, and a stopped one will
again when it starts. Deregistering therefore only hides the image; `reclaim` deletes the files of
deregistered images that nothing uses. It runs right after each deregistration and on every monitor
round of the workers, so the file goes within a round of the last instance ending, and a crash
between the two steps is repaired by the next round.

Quota: an account holds the files of its images not yet reclaimed (deregistered ones that instances
still use included: those bytes are still on disk) and its uploads. The limits are `[images]` in
reservoir.ini, each overridable by RESERVOIR_IMAGES_<NAME>.
"""
import configparser
import dataclasses
import os
import re

from sqlalchemy import func, or_, select

from .config import MAIN_FILE, ConfigError
from .errors import BackendError
from .lifecycle import FINAL_STATES
from .models import Image as ImageRow, Instance as InstanceRow, Upload as UploadRow, utcnow
# Quota decisions on images and uploads share the account lock and storage limit of every quota.
from .quotas import storage_limit, used_bytes

_UNITS = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
_SIZE = re.compile(r'([0-9]+)\s*([KMGT]?)(?:i?B)?', re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class StorageLimits:
    """[images] in reservoir.ini. Sizes in bytes (the INI accepts K, M, G and T suffixes)."""
    max_image_size: int = 20 * _UNITS['G']        # one image as stored, after decompression
    max_virtual_size: int = 2 * _UNITS['T']       # the disk a guest sees, which its overlay may fill
    account_quota: int = 100 * _UNITS['G']        # images and uploads of one account together
    upload_expiry_hours: float = 24.0             # unfinished uploads untouched this long are dropped


def parse_size(text):
    """'20G', '512M', '1048576' -> bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f'{text!r} is not a size such as 512M, 20G or 2T')
    return int(match[1]) * _UNITS[match[2].upper()]


def load_limits(config, environ=None):
    """The [images] settings of the configuration's INI files, then the environment's overrides."""
    environ = os.environ if environ is None else environ
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read([config.conf_dir / MAIN_FILE, config.home / MAIN_FILE], encoding='utf-8')
    except configparser.Error as error:
        raise ConfigError(f'cannot parse {MAIN_FILE}: {error}') from None
    values = {}
    for field in dataclasses.fields(StorageLimits):
        text = environ.get(f'RESERVOIR_IMAGES_{field.name.upper()}')
        if text is None:
            text = parser.get('images', field.name, fallback=None)
        if text is not None and text.strip():
            values[field.name] = _typed(field, text.strip())
    return StorageLimits(**values)


def _typed(field, text):
    try:
        value = float(text) if field.type is float else parse_size(text)
    except ValueError as error:
        raise ConfigError(f'[images] {field.name}: {error}') from None
    if value <= 0:
        raise ConfigError(f'[images] {field.name} must be positive')
    return value


# --- Quota ------------------------------------------------------------------------------------



def check_quota(session, limits, owner, more_bytes, except_upload=None):
    """Refuse if the account would hold more than its quota with `more_bytes` more."""
    used = used_bytes(session, owner, except_upload)
    quota = storage_limit(session, limits.account_quota, owner)
    if used + more_bytes > quota:
        raise quota_exceeded(quota, used)
    return quota - used


def quota_exceeded(quota, used):
    return BackendError('ResourceLimitExceeded',
                        f'Image storage quota exceeded: the account holds {_size(used)} of its '
                        f'{_size(quota)}; deregister images or delete uploads first')


def usage_by_account(session):
    """{account id: bytes held} for every account that holds any."""
    usage = {}
    for owner, held in session.execute(
            select(ImageRow.owner, func.sum(ImageRow.size_bytes))
            .where(ImageRow.reclaimed_at.is_(None)).group_by(ImageRow.owner)):
        usage[owner] = usage.get(owner, 0) + int(held or 0)
    for owner, held in session.execute(
            select(UploadRow.owner, func.sum(UploadRow.size_bytes)).group_by(UploadRow.owner)):
        usage[owner] = usage.get(owner, 0) + int(held or 0)
    return usage


def _size(count):
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if count < 1024:
            return f'{count:.0f} {unit}' if unit == 'bytes' else f'{count:.1f} {unit}'
        count /= 1024
    return f'{count:.1f} TiB'


# --- Lifetimes ----------------------------------------------------------------------------------

def _live_instances():
    return InstanceRow.state.not_in([state.value for state in FINAL_STATES])


def users_of(session, image_ids):
    """{image id: live instances using it as machine image, kernel or ramdisk} for the given ids."""
    image_ids = list(image_ids)
    counts = dict.fromkeys(image_ids, 0)
    if not image_ids:
        return counts
    rows = session.execute(select(InstanceRow.image_id, InstanceRow.kernel_id, InstanceRow.ramdisk_id).where(
        _live_instances(), or_(InstanceRow.image_id.in_(image_ids), InstanceRow.kernel_id.in_(image_ids),
                               InstanceRow.ramdisk_id.in_(image_ids))))
    for used in rows:
        for image_id in set(used):
            if image_id in counts:
                counts[image_id] += 1
    return counts


def reclaim(db, repository, image_ids=None):
    """Delete the files of deregistered images no live instance uses; returns their ids.

    Files are deleted before the transaction commits: if it then fails, the next round finds the
    same images again and finishes the job, so no file is ever left without a reason.
    """
    with db.write() as session:
        query = select(ImageRow).where(ImageRow.state == 'deregistered', ImageRow.reclaimed_at.is_(None))
        if image_ids is not None:
            query = query.where(ImageRow.image_id.in_(list(image_ids)))
        candidates = session.scalars(query.with_for_update(skip_locked=True)).all()
        users = users_of(session, [row.image_id for row in candidates])
        released = [row for row in candidates if users[row.image_id] == 0]
        now = utcnow()
        for row in released:
            repository.remove_files_of(row.image_id, row.path)
            row.reclaimed_at = now
        return [row.image_id for row in released]
