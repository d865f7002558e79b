"""Images: machine disks, kernels and ramdisks in the repository, and who may see and launch them.

Sections: disk inspection with `qemu-img`, the repository of image files, the visibility rules of
DescribeImages, and the service that ties them to the `images` table.

An image is registered `pending`, which reserves its name, and becomes `available` once its file is
in the repository; if storing fails, the registration is undone, so nothing stays half-made.
"""
import dataclasses
import datetime
import json
import os
import re
import subprocess
from pathlib import Path

from sqlalchemy import and_, false, or_, select

from .config import ARCHITECTURES
from .errors import BackendError, Conflict, InvalidValue, NotFound
from .models import Image as ImageRow, LaunchPermission, new_resource_id

ID_PREFIXES = {'machine': 'ami', 'kernel': 'aki', 'ramdisk': 'ari'}
STATES = ('pending', 'available', 'failed', 'deregistered')
ROOT_DEVICE_NAME = '/dev/sda1'
# Owner aliases of images published by AWS itself: none exist in this cloud.
AWS_OWNER_ALIASES = ('amazon', 'aws-marketplace', 'aws-backup-vault')

IMAGE_ID = re.compile(r'a[mkr]i-[0-9a-f]{8}(?:[0-9a-f]{9})?')
_ACCOUNT_ID = re.compile(r'\d{12}')
_IMAGE_NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")
MAX_DESCRIPTION_LENGTH = 255


@dataclasses.dataclass(frozen=True)
class Image:
    image_id: str
    name: str
    description: str | None
    owner: str
    image_type: str
    state: str
    public: bool
    architecture: str
    kernel_id: str | None
    ramdisk_id: str | None
    root_device_name: str | None
    size_bytes: int | None
    virtual_size_bytes: int | None
    disk_format: str
    path: Path | None
    created_at: datetime.datetime


# --- Disk inspection ------------------------------------------------------------------------------

# Formats kept as they are, and formats converted to qcow2 on the way into the repository.
KEPT_FORMATS = ('qcow2', 'raw')
CONVERTED_FORMATS = ('vmdk', 'vdi', 'vhdx', 'vpc', 'qed', 'qcow')
QEMU_IMG_TIMEOUT_SECONDS = 600
SECTOR_BYTES = 512


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    format: str
    virtual_size: int


def inspect_disk(path, expected_format=None):
    """Describe a disk image file, refusing what cannot safely be launched.

    Refused: unreadable or unknown files, images that read another file (a backing file or an
    external data file, which a guest could use to read the host), and encrypted images.
    """
    command = ['qemu-img', 'info', '--output=json']
    if expected_format:
        command += ['-f', expected_format]
    info = json.loads(_run(command + ['--', str(path)], f'{path} is not a readable disk image'))
    disk_format = info.get('format')
    if disk_format not in KEPT_FORMATS + CONVERTED_FORMATS:
        raise InvalidValue(f'{path}: unsupported disk format {disk_format!r}')
    specific = (info.get('format-specific') or {}).get('data') or {}
    if info.get('backing-filename') or info.get('full-backing-filename'):
        raise InvalidValue(f'{path} has a backing file; flatten it first (qemu-img convert)')
    if specific.get('data-file'):
        raise InvalidValue(f'{path} keeps its data in another file; convert it first')
    if info.get('encrypted') or specific.get('encrypt'):
        raise InvalidValue(f'{path} is encrypted')
    if disk_format == 'raw' and not _whole_sectors(path):
        raise InvalidValue(f'{path} is not a disk image: a raw disk is a whole number of sectors')
    return DiskInfo(disk_format, int(info['virtual-size']))


def _whole_sectors(path):
    size = os.stat(path).st_size
    return size > 0 and size % SECTOR_BYTES == 0


def _run(command, failure):
    try:
        completed = subprocess.run(command, capture_output=True, text=True,
                                   timeout=QEMU_IMG_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise InvalidValue(f'{failure} (timed out)') from None
    except FileNotFoundError:
        raise BackendError('InternalError', f'{command[0]} is not installed') from None
    if completed.returncode != 0:
        detail = completed.stderr.strip().splitlines()[-1:] or ['']
        raise InvalidValue(f'{failure}: {detail[0]}')
    return completed.stdout


# --- The repository of image files ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StoredFile:
    file_name: str
    disk_format: str
    size_bytes: int
    virtual_size_bytes: int


class ImageRepository:
    """The directory of image files, one `<image_id>.<format>` file per image."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def path_of(self, file_name):
        return self.directory / file_name

    def store_disk(self, source, image_id, source_info):
        """Copy a disk image in, converting formats other than qcow2 and raw to qcow2."""
        target_format = source_info.format if source_info.format in KEPT_FORMATS else 'qcow2'
        file_name = f'{image_id}.{target_format}'

        def write(partial):
            if target_format == source_info.format:
                _copy(source, partial)
            else:
                _run(['qemu-img', 'convert', '-f', source_info.format, '-O', 'qcow2', '--',
                      str(source), str(partial)], f'cannot convert {source}')
            # Check the copy, not the source, which may have changed since it was inspected.
            return inspect_disk(partial, expected_format=target_format)

        info = self._store(file_name, write)
        return StoredFile(file_name, target_format, self.path_of(file_name).stat().st_size,
                          info.virtual_size)

    def store_blob(self, source, image_id):
        """Copy a kernel or ramdisk in as it is."""
        file_name = f'{image_id}.raw'
        self._store(file_name, lambda partial: _copy(source, partial))
        size = self.path_of(file_name).stat().st_size
        return StoredFile(file_name, 'raw', size, size)

    def remove(self, file_name):
        try:
            self.path_of(file_name).unlink()
        except FileNotFoundError:
            pass

    def _store(self, file_name, write):
        """Run `write` on a temporary file, then give it its name: no half-written image is ever seen."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.path_of(f'.{file_name}.partial')
        try:
            result = write(partial)
            os.replace(partial, self.path_of(file_name))
            return result
        finally:
            if partial.exists():
                partial.unlink()


def _copy(source, target):
    # cp keeps raw images sparse, and shares blocks on filesystems that can (reflink).
    _run(['cp', '--sparse=always', '--reflink=auto', '--', str(source), str(target)],
         f'cannot copy {source}')


# --- Visibility -----------------------------------------------------------------------------------

def _shared_with(account_id):
    return select(LaunchPermission.image_id).where(LaunchPermission.account_id == account_id)


def visible_to(caller):
    """What DescribeImages shows an account: its own images, public ones, and ones shared with it."""
    return and_(ImageRow.state != 'deregistered',
                or_(ImageRow.owner == caller, ImageRow.public,
                    ImageRow.image_id.in_(_shared_with(caller))))


def _owned_by(caller, owners):
    accounts = set()
    for owner in owners:
        if owner == 'self':
            accounts.add(caller)
        elif _ACCOUNT_ID.fullmatch(owner):
            accounts.add(owner)
        elif owner not in AWS_OWNER_ALIASES:
            raise InvalidValue(f"Invalid owner '{owner}'", code='InvalidUserID.Malformed')
    return ImageRow.owner.in_(accounts) if accounts else false()


def _executable_by(caller, accounts):
    """EC2's ExecutableBy: `all` is public images; `self` is own and shared-with-me images; another
    account is the caller's images shared with that account."""
    clauses = []
    for account in accounts:
        if account == 'all':
            clauses.append(ImageRow.public)
        elif account in ('self', caller):
            clauses.append(or_(ImageRow.owner == caller, ImageRow.image_id.in_(_shared_with(caller))))
        elif _ACCOUNT_ID.fullmatch(account):
            clauses.append(and_(ImageRow.owner == caller, ImageRow.image_id.in_(_shared_with(account))))
        else:
            raise InvalidValue(f"Invalid user id '{account}'", code='InvalidUserID.Malformed')
    return or_(*clauses)


def _check_image_ids(image_ids):
    for image_id in image_ids:
        if not isinstance(image_id, str) or not IMAGE_ID.fullmatch(image_id):
            raise InvalidValue(f"Invalid id: '{image_id}'", code='InvalidAMIID.Malformed')


def _missing_images(image_ids):
    return NotFound('InvalidAMIID.NotFound', f"The image id '[{', '.join(image_ids)}]' does not exist")


# --- The service ----------------------------------------------------------------------------------

class ImageService:
    def __init__(self, db, repository):
        self._db = db
        self.repository = repository

    def register_file(self, path, name, owner, public=False, image_type='machine', description=None,
                      kernel_id=None, ramdisk_id=None, architecture='x86_64'):
        """Copy an image file into the repository and register it, available, for `owner`."""
        path = Path(path)
        _check_registration(name, image_type, description, architecture, kernel_id, ramdisk_id)
        if not path.is_file():
            raise InvalidValue(f'{path} is not a file')
        source_info = inspect_disk(path) if image_type == 'machine' else None
        row = self._reserve(ImageRow(
            image_id=new_resource_id(ID_PREFIXES[image_type]), owner=owner, name=name,
            description=description, image_type=image_type, state='pending', public=bool(public),
            architecture=architecture, disk_format=source_info.format if source_info else 'raw',
            kernel_id=kernel_id, ramdisk_id=ramdisk_id,
            root_device_name=ROOT_DEVICE_NAME if image_type == 'machine' else None))
        try:
            if source_info:
                stored = self.repository.store_disk(path, row.image_id, source_info)
            else:
                stored = self.repository.store_blob(path, row.image_id)
        except BaseException:
            self._forget(row.image_id)
            raise
        return self._make_available(row.image_id, stored)

    def describe(self, caller, image_ids=None, owners=None, executable_by=None):
        """DescribeImages: the images visible to `caller`, narrowed by every criterion given."""
        query = select(ImageRow).where(visible_to(caller))
        if image_ids:
            _check_image_ids(image_ids)
            query = query.where(ImageRow.image_id.in_(image_ids))
        if owners:
            query = query.where(_owned_by(caller, owners))
        if executable_by:
            query = query.where(_executable_by(caller, executable_by))
        with self._db.read() as session:
            if image_ids:
                self._check_visible(session, caller, image_ids)
            rows = session.scalars(query.order_by(ImageRow.created_at, ImageRow.image_id)).all()
        return [self._record(row) for row in rows]

    def list_all(self):
        """Every image of every account, deregistered ones included: for administrators."""
        with self._db.read() as session:
            rows = session.scalars(select(ImageRow).order_by(ImageRow.created_at, ImageRow.image_id))
            return [self._record(row) for row in rows]

    def _check_visible(self, session, caller, image_ids):
        visible = set(session.scalars(select(ImageRow.image_id).where(
            visible_to(caller), ImageRow.image_id.in_(image_ids))))
        missing = [image_id for image_id in dict.fromkeys(image_ids) if image_id not in visible]
        if missing:
            raise _missing_images(missing)

    def _reserve(self, row):
        """Insert the pending image, after checking its name is free and its kernel and ramdisk usable."""
        with self._db.write() as session:
            self._check_launch_companion(session, row.owner, row.kernel_id, 'kernel')
            self._check_launch_companion(session, row.owner, row.ramdisk_id, 'ramdisk')
            if session.scalar(select(ImageRow.image_id).where(
                    ImageRow.owner == row.owner, ImageRow.name == row.name,
                    ImageRow.state != 'deregistered')) is not None:
                raise Conflict('InvalidAMIName.Duplicate',
                               f"AMI name {row.name} is already in use by AMI of this account")
            session.add(row)
        return row

    def _check_launch_companion(self, session, owner, image_id, image_type):
        if image_id is None:
            return
        _check_image_ids([image_id])
        companion = session.scalar(select(ImageRow).where(ImageRow.image_id == image_id, visible_to(owner)))
        if companion is None:
            raise _missing_images([image_id])
        if companion.image_type != image_type or companion.state != 'available':
            raise InvalidValue(f'{image_id} is not an available {image_type} image')

    def _make_available(self, image_id, stored):
        with self._db.write() as session:
            row = session.get(ImageRow, image_id)
            row.state = 'available'
            row.path = stored.file_name
            row.disk_format = stored.disk_format
            row.size_bytes = stored.size_bytes
            row.virtual_size_bytes = stored.virtual_size_bytes
        return self._record(row)

    def _forget(self, image_id):
        with self._db.write() as session:
            row = session.get(ImageRow, image_id)
            if row is not None:
                session.delete(row)

    def _record(self, row):
        return Image(
            image_id=row.image_id, name=row.name, description=row.description, owner=row.owner,
            image_type=row.image_type, state=row.state, public=row.public,
            architecture=row.architecture, kernel_id=row.kernel_id, ramdisk_id=row.ramdisk_id,
            root_device_name=row.root_device_name, size_bytes=row.size_bytes,
            virtual_size_bytes=row.virtual_size_bytes, disk_format=row.disk_format,
            path=self.repository.path_of(row.path) if row.path else None, created_at=row.created_at)


def _check_registration(name, image_type, description, architecture, kernel_id, ramdisk_id):
    if not isinstance(name, str) or not _IMAGE_NAME.fullmatch(name):
        raise InvalidValue(f"Invalid AMI name {name!r}: use 3 to 128 letters, digits, spaces or ()[]./-'@_",
                           code='InvalidAMIName.Malformed')
    if image_type not in ID_PREFIXES:
        raise InvalidValue(f"Invalid image type {image_type!r}; use machine, kernel or ramdisk")
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidValue(f'Descriptions are at most {MAX_DESCRIPTION_LENGTH} characters long')
    if architecture not in ARCHITECTURES:
        raise InvalidValue(f"Invalid architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}")
    if image_type != 'machine' and (kernel_id or ramdisk_id):
        raise InvalidValue('Only machine images take a kernel or a ramdisk')
