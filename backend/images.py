"""Images: machine disks, kernels and ramdisks in the repository, and who may see and launch them.

Sections: disk inspection with `qemu-img` (stricter for files users upload), the repository of image
files, the visibility rules of DescribeImages, and the service that ties them to the `images` table:
registration, copies, launch permissions, descriptions and deregistration.

States: an image is `pending` while its file is being made (which reserves its name), `available`
once the file is in the repository, `failed` if making it failed (with the reason), `deregistered`
once its owner removed it. A registration that fails is undone, so nothing stays half-made. A
deregistered image keeps its file while instances use it; `image_lifetimes` says when it goes.

Code elsewhere that makes images (CreateImage) keeps to the same rules with `check_new_image`
(name, kernel, ramdisk), `image_lifetimes.check_quota`, `mark_available` and `mark_failed`.
"""
import dataclasses
import datetime
import errno
import json
import os
import re
import struct
import subprocess
from pathlib import Path

from sqlalchemy import and_, false, or_, select

from . import image_lifetimes
from .config import ARCHITECTURES
from .errors import BackendError, Conflict, InvalidValue, NotFound
from .models import CLOUD_ACCOUNT, Image as ImageRow, LaunchPermission, Tag, new_resource_id, utcnow
from .quotas import Quotas, check_images, lock_account
from .storage.ebs_images import add_block_devices, block_devices_of, check_ebs_registration, settle_pending
from .storage.launch_volumes import BlockDevice
from .storage.volume_files import GIB
from .tags import check_tags

ID_PREFIXES = {'machine': 'ami', 'kernel': 'aki', 'ramdisk': 'ari'}
STATES = ('pending', 'available', 'failed', 'deregistered')
ROOT_DEVICE_NAME = '/dev/sda1'
# Owner aliases of images published by AWS itself: none exist in this cloud.
AWS_OWNER_ALIASES = ('amazon', 'aws-marketplace', 'aws-backup-vault')
# What administrators register belongs to the cloud itself (CLOUD_ACCOUNT), as AWS's own images
# belong to `amazon`, and is shown with this alias.
CLOUD_OWNER_ALIAS = 'reservoir'


def owner_alias(owner):
    """EC2's imageOwnerAlias of an image's owner: the cloud's alias for its own images, else None."""
    return CLOUD_OWNER_ALIAS if owner == CLOUD_ACCOUNT else None
PUBLIC_GROUP = 'all'

IMAGE_ID = re.compile(r'a[mkr]i-[0-9a-f]{8}(?:[0-9a-f]{9})?')
ACCOUNT_ID = re.compile(r'[0-9]{12}')
_IMAGE_NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")
_ROOT_DEVICE = re.compile(r'/dev/(?:sd|vd|xvd|hd)[a-z][0-9]{0,2}')
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
    state_reason: str | None = None
    deregistered_at: datetime.datetime | None = None
    reclaimed_at: datetime.datetime | None = None
    root_device_type: str = 'instance-store'


@dataclasses.dataclass(frozen=True)
class Registration:
    """What RegisterImage and CopyImage say about the new image, beside its file."""
    name: str
    description: str | None = None
    architecture: str = 'x86_64'
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    root_device_name: str | None = None
    tags: tuple = ()                      # ((key, value), …), the owner's tags on the new image


@dataclasses.dataclass(frozen=True)
class Attributes:
    """What DescribeImageAttribute tells anyone who may see the image."""
    image_id: str
    description: str | None
    kernel_id: str | None
    ramdisk_id: str | None


# --- Disk inspection ------------------------------------------------------------------------------

# Formats kept as they are, and formats converted to qcow2 on the way into the repository.
KEPT_FORMATS = ('qcow2', 'raw')
CONVERTED_FORMATS = ('vmdk', 'vdi', 'vhdx', 'vpc', 'qed', 'qcow')
# What users may upload: formats whose every byte of metadata is checked here.
UPLOAD_FORMATS = KEPT_FORMATS
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


def inspect_upload(path, declared_format=None, max_virtual_size=None, label='the image'):
    """Inspect a file a user sent: only qcow2 and raw, checked before qemu-img ever reads it.

    The format comes from the file's own magic number, never from qemu-img's probing (probing a
    VMDK descriptor opens the files it names), and must match the declared one. A qcow2 must name no
    other file, be unencrypted and pass `qemu-img check` (which finds truncated files); a raw image
    must start like a disk (a partition table or a file system). `label` names the file in messages.
    """
    sniffed = sniff_format(path)
    if sniffed not in UPLOAD_FORMATS:
        raise InvalidValue(f'{label} is a {sniffed} image; upload qcow2 or raw '
                           f'(qemu-img convert -O qcow2 …)', code='InvalidImage.Format')
    if declared_format and declared_format != sniffed:
        raise InvalidValue(f'{label} was declared {declared_format} but is a {sniffed} image',
                           code='InvalidImage.Format')
    if sniffed == 'qcow2':
        _check_qcow2_header(path, label)
    else:
        _check_raw_disk(path, label)
    try:
        info = inspect_disk(path, expected_format=sniffed)
    except InvalidValue as refusal:
        raise InvalidValue(refusal.message.replace(str(path), label), code='InvalidImage.Format') from None
    if sniffed == 'qcow2':
        _check_consistency(path, label)
    if max_virtual_size is not None and info.virtual_size > max_virtual_size:
        raise InvalidValue(f'{label} is a {info.virtual_size}-byte disk; at most {max_virtual_size} '
                           f'bytes are allowed', code='InvalidImage.TooLarge')
    return info


# Magic numbers of the formats qemu knows: (offset, bytes, format).
_MAGICS = (
    (0, b'QFI\xfb', 'qcow2'),
    (0, b'KDMV', 'vmdk'),
    (0, b'# Disk DescriptorFile', 'vmdk'),
    (0, b'COWD', 'vmdk'),
    (0x40, b'\x7f\x10\xda\xbe', 'vdi'),
    (0, b'vhdxfile', 'vhdx'),
    (0, b'conectix', 'vpc'),
    (0, b'QED\x00', 'qed'),
    (0, b'LUKS\xba\xbe', 'luks'),
    (0, b'WithoutFreeSpace', 'parallels'),
    (0, b'WithouFreSpacExt', 'parallels'),
    (0, b'cxsparse', 'dmg'),
)
_HEADER_BYTES = 128


def sniff_format(path):
    """The image format a file's magic number announces ('raw' when it announces none)."""
    with open(path, 'rb') as source:
        head = source.read(_HEADER_BYTES)
    for offset, magic, disk_format in _MAGICS:
        if head[offset:offset + len(magic)] == magic:
            if disk_format == 'qcow2' and head[4:8] == b'\x00\x00\x00\x01':
                return 'qcow'               # version 1 shares the magic
            return disk_format
    return 'raw'


_QCOW2_HEADER = struct.Struct('>4sIQIIQI')        # magic … crypt_method: the first 36 bytes
_QCOW2_INCOMPATIBLE = struct.Struct('>Q')         # at 72, version 3 only
_QCOW2_CORRUPT = 1 << 1
_QCOW2_EXTERNAL_DATA_FILE = 1 << 2


def _check_qcow2_header(path, label):
    with open(path, 'rb') as source:
        header = source.read(_HEADER_BYTES)
    if len(header) < 80:
        raise InvalidValue(f'{label} is truncated: its qcow2 header is incomplete', code='InvalidImage.Format')
    _, version, backing_offset, backing_size, _, _, crypt_method = _QCOW2_HEADER.unpack_from(header)
    if version not in (2, 3):
        raise InvalidValue(f'{label} is a qcow2 image of unknown version {version}', code='InvalidImage.Format')
    if backing_offset or backing_size:
        raise InvalidValue(f'{label} has a backing file; flatten it first (qemu-img convert -O qcow2)',
                           code='InvalidImage.Format')
    if crypt_method:
        raise InvalidValue(f'{label} is encrypted', code='InvalidImage.Format')
    incompatible = _QCOW2_INCOMPATIBLE.unpack_from(header, 72)[0] if version == 3 else 0
    if incompatible & _QCOW2_EXTERNAL_DATA_FILE:
        raise InvalidValue(f'{label} keeps its data in another file; convert it first', code='InvalidImage.Format')
    if incompatible & _QCOW2_CORRUPT:
        raise InvalidValue(f'{label} is marked corrupt', code='InvalidImage.Format')


def _check_consistency(path, label):
    """`qemu-img check`: 0 is clean, 3 is leaked clusters only (harmless); anything else is refused."""
    command = ['qemu-img', 'check', '-q', '-f', 'qcow2', '--', str(path)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise InvalidValue(f'{label} could not be checked in time', code='InvalidImage.Format') from None
    if completed.returncode not in (0, 3):
        raise InvalidValue(f'{label} is corrupt or truncated (qemu-img check found errors)',
                           code='InvalidImage.Format')


# Where a bootable raw disk shows what it is: (offset, bytes).
_DISK_SIGNATURES = (
    (510, b'\x55\xaa'),            # MBR, or GPT's protective MBR; also FAT boot sectors
    (512, b'EFI PART'),            # GPT
    (1080, b'\x53\xef'),           # ext2/3/4 superblock magic
    (0, b'XFSB'),                  # XFS
    (0x10040, b'_BHRfS_M'),        # btrfs
    (0x8001, b'CD001'),            # ISO 9660
    (0, b'hsqs'),                  # squashfs
    (512 + 0, b'LABELONE'),        # LVM physical volume
)


def _check_raw_disk(path, label):
    size = os.stat(path).st_size
    if size == 0 or size % SECTOR_BYTES:
        raise InvalidValue(f'{label} is not a disk image: it is neither qcow2 nor a raw disk '
                           f'(a raw disk is a whole number of {SECTOR_BYTES}-byte sectors)',
                           code='InvalidImage.Format')
    with open(path, 'rb') as source:
        for offset, signature in _DISK_SIGNATURES:
            source.seek(offset)
            if source.read(len(signature)) == signature:
                return
    raise InvalidValue(f'{label} is not a disk image: it is neither qcow2 nor a raw disk with a partition '
                       f'table or a file system', code='InvalidImage.Format')


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

    def store_copy(self, file_name, image_id, disk_format):
        """Another image of the same file: a hard link (image files never change), else a copy."""
        target_name = f'{image_id}.{disk_format}'

        def write(partial):
            try:
                os.link(self.path_of(file_name), partial)
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                _copy(self.path_of(file_name), partial)

        self._store(target_name, write)
        return target_name

    def move_in(self, source, file_name):
        """Take a file that is already on this file system (a finished upload) as `file_name`."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(source, self.path_of(file_name))

    def remove(self, file_name):
        try:
            self.path_of(file_name).unlink()
        except FileNotFoundError:
            pass

    def remove_files_of(self, image_id, file_name=None):
        """Every file of an image, including one a late writer stored after it was deregistered."""
        for name in {file_name, *(f'{image_id}.{disk_format}' for disk_format in KEPT_FORMATS)} - {None}:
            self.remove(name)

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
    """What DescribeImages shows an account, and what it may launch: its own images, public ones,
    and ones shared with it."""
    return and_(ImageRow.state != 'deregistered',
                or_(ImageRow.owner == caller, ImageRow.public,
                    ImageRow.image_id.in_(_shared_with(caller))))


def _owned_by(caller, owners):
    accounts = set()
    for owner in owners:
        if owner == 'self':
            accounts.add(caller)
        elif owner == CLOUD_OWNER_ALIAS:
            accounts.add(CLOUD_ACCOUNT)
        elif ACCOUNT_ID.fullmatch(owner):
            accounts.add(owner)
        elif owner not in AWS_OWNER_ALIASES:
            raise InvalidValue(f"Invalid owner '{owner}'", code='InvalidUserID.Malformed')
    return ImageRow.owner.in_(accounts) if accounts else false()


def _executable_by(caller, accounts):
    """EC2's ExecutableBy: `all` is public images; `self` is own and shared-with-me images; another
    account is the caller's images shared with that account."""
    clauses = []
    for account in accounts:
        if account == PUBLIC_GROUP:
            clauses.append(ImageRow.public)
        elif account in ('self', caller):
            clauses.append(or_(ImageRow.owner == caller, ImageRow.image_id.in_(_shared_with(caller))))
        elif ACCOUNT_ID.fullmatch(account):
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


def _check_accounts(accounts):
    for account in accounts:
        if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
            raise InvalidValue(f"Invalid user id '{account}': an account id is 12 digits",
                               code='InvalidUserID.Malformed')


# --- The service ----------------------------------------------------------------------------------

class ImageService:
    def __init__(self, db, repository, limits=None, quotas=None):
        self._db = db
        self.repository = repository
        self.limits = limits or image_lifetimes.StorageLimits()
        self.quotas = quotas or Quotas(storage=self.limits.account_quota)

    # -- registering ------------------------------------------------------------------------------

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

    def add_registered(self, session, owner, image_id, registration, image_type, stored):
        """Insert an available image whose file `stored` names, in the caller's transaction (the
        caller moves the file into the repository before it commits)."""
        _check_new_registration(registration, image_type)
        row = _new_row(owner, registration, image_type, state='available', image_id=image_id)
        row.path, row.disk_format = stored.file_name, stored.disk_format
        row.size_bytes, row.virtual_size_bytes = stored.size_bytes, stored.virtual_size_bytes
        self.check_new_image(session, row)
        session.add(row)
        _add_tags(session, row, registration.tags)
        return row

    def register_ebs(self, owner, registration, devices):
        """RegisterImage of an EBS-backed image: its root device mapped to a snapshot (storage.ebs_images)."""
        return self._register_ebs(owner, registration, devices, 'available')

    def register_ebs_pending(self, owner, registration, devices):
        """CreateImage of an EBS-backed instance: available once its snapshots are taken."""
        return self._register_ebs(owner, registration, devices, 'pending')

    def _register_ebs(self, owner, registration, devices, state):
        _check_new_registration(registration, 'machine')
        with self._db.write() as session:
            row = _new_row(owner, registration, 'machine', state=state)
            row.root_device_type, row.disk_format, row.size_bytes = 'ebs', 'qcow2', 0
            check_ebs_registration(session, owner, row.root_device_name, devices)
            self.check_new_image(session, row)
            session.add(row)
            session.flush()
            add_block_devices(session, row.image_id, devices)
            _add_tags(session, row, registration.tags)
            settle_pending(session)       # its snapshots may all be taken already
            return self._record(row)

    def ebs_twin(self, owner, image_id, name, snapshots):
        """An EBS-backed twin of an owner's instance-store machine image: its disk copied into a
        snapshot (public if the image is) and an image with the same kernel and ramdisk whose root is
        that snapshot. For administrators, so the stock image can also launch on EBS roots."""
        (source,) = self.describe(owner, image_ids=[image_id])
        if source.owner != owner or source.image_type != 'machine' or source.path is None:
            raise InvalidValue(f'{image_id} is not an instance-store machine image of this account')
        size_gib = max(1, -(-(source.virtual_size_bytes or 0) // GIB))
        root = source.root_device_name or ROOT_DEVICE_NAME
        snapshot = snapshots.import_disk(owner, source.path, source.disk_format, size_gib,
                                         f'Root of {image_id} ({source.name})', public=source.public)
        made = self.register_ebs(owner, Registration(
            name=name, description=f'{source.description or source.name}, with an EBS root',
            architecture=source.architecture, kernel_id=source.kernel_id, ramdisk_id=source.ramdisk_id,
            root_device_name=root), [BlockDevice(root, snapshot.snapshot_id, size_gib)])
        if source.public:
            self.change_launch_permission(owner, made.image_id, add_public=True)
        return made, snapshot

    def block_devices_of(self, image_ids):
        """{image_id: [BlockDevice, …]} of EBS-backed images (and of launch mappings images carry)."""
        with self._db.read() as session:
            return block_devices_of(session, image_ids)

    def copy(self, caller, source_image_id, registration):
        """CopyImage: a new private image of the caller with the same file (linked, not copied)."""
        _check_image_ids([source_image_id])
        with self._db.write() as session:
            source = session.scalar(select(ImageRow).where(ImageRow.image_id == source_image_id,
                                                           visible_to(caller)))
            if source is None:
                raise _missing_images([source_image_id])
            if source.state != 'available' or (source.path is None and source.root_device_type != 'ebs'):
                raise Conflict('IncorrectState', f"The image '{source_image_id}' is {source.state}; "
                                                 'only available images can be copied')
            registration = dataclasses.replace(
                registration, architecture=source.architecture, kernel_id=source.kernel_id,
                ramdisk_id=source.ramdisk_id, root_device_name=source.root_device_name)
            _check_new_registration(registration, source.image_type)
            if source.root_device_type == 'ebs':
                # Snapshots never change: the copy maps the same ones (they stay while it uses them).
                devices = block_devices_of(session, [source_image_id]).get(source_image_id, [])
                row = _new_row(caller, registration, 'machine', state='available')
                row.root_device_type, row.disk_format, row.size_bytes = 'ebs', 'qcow2', 0
                self.check_new_image(session, row, check_companions=False)
                session.add(row)
                session.flush()
                add_block_devices(session, row.image_id, devices)
                _add_tags(session, row, registration.tags)
                return self._record(row)
            row = _new_row(caller, registration, source.image_type, state='pending')
            row.disk_format, row.size_bytes = source.disk_format, source.size_bytes
            row.virtual_size_bytes = source.virtual_size_bytes
            self.check_new_image(session, row, check_companions=False)
            lock_account(session, caller)
            image_lifetimes.check_quota(session, self.limits, caller, source.size_bytes or 0)
            session.add(row)
            _add_tags(session, row, registration.tags)
            source_file = source.path
        try:
            file_name = self.repository.store_copy(source_file, row.image_id, row.disk_format)
        except BaseException:
            self._forget(row.image_id)
            raise
        return self.mark_available(row.image_id, file_name, row.virtual_size_bytes)

    def check_new_image(self, session, row, check_companions=True):
        """Refuse a new image whose name the owner already uses, or whose kernel or ramdisk it
        cannot launch. Callers insert `row` in the same transaction."""
        if check_companions:
            self._check_launch_companion(session, row.owner, row.kernel_id, 'kernel')
            self._check_launch_companion(session, row.owner, row.ramdisk_id, 'ramdisk')
        if session.scalar(select(ImageRow.image_id).where(
                ImageRow.owner == row.owner, ImageRow.name == row.name,
                ImageRow.state != 'deregistered')) is not None:
            raise Conflict('InvalidAMIName.Duplicate',
                           f"AMI name {row.name} is already in use by AMI of this account")
        lock_account(session, row.owner)
        check_images(session, self.quotas, row.owner)

    def mark_available(self, image_id, file_name, virtual_size_bytes):
        """A pending image's file is in the repository: the image may be launched."""
        stored = StoredFile(file_name, file_name.rsplit('.', 1)[-1],
                            self.repository.path_of(file_name).stat().st_size, virtual_size_bytes)
        return self._make_available(image_id, stored)

    def mark_failed(self, image_id, reason):
        """A pending image could not be made: it stays, failed, with the reason, until deregistered."""
        with self._db.write() as session:
            row = session.get(ImageRow, image_id)
            if row is not None and row.state == 'pending':
                row.state, row.state_reason = 'failed', reason

    # -- describing -------------------------------------------------------------------------------

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

    def tags_of(self, caller, image_ids):
        """{image id: {key: value}} of the caller's own tags on those images."""
        with self._db.read() as session:
            rows = session.execute(select(Tag.resource_id, Tag.key, Tag.value).where(
                Tag.owner == caller, Tag.resource_type == 'image', Tag.resource_id.in_(list(image_ids))))
            tags = {}
            for image_id, key, value in rows:
                tags.setdefault(image_id, {})[key] = value
            return tags

    def users_of(self, image_ids):
        """{image id: live instances using it}."""
        with self._db.read() as session:
            return image_lifetimes.users_of(session, image_ids)

    def usage_by_account(self):
        """{account id: bytes of images and uploads it holds}."""
        with self._db.read() as session:
            return image_lifetimes.usage_by_account(session)

    # -- attributes -------------------------------------------------------------------------------

    def attributes(self, caller, image_id):
        """DescribeImageAttribute of an image the caller may see."""
        _check_image_ids([image_id])
        with self._db.read() as session:
            self._check_visible(session, caller, [image_id])
            row = session.get(ImageRow, image_id)
            return Attributes(row.image_id, row.description, row.kernel_id, row.ramdisk_id)

    def launch_permissions(self, caller, image_id):
        """(public, accounts shared with): only the owner may know who may launch an image."""
        with self._db.read() as session:
            row = self._owned_image(session, caller, image_id)
            shared = session.scalars(select(LaunchPermission.account_id).where(
                LaunchPermission.image_id == image_id).order_by(LaunchPermission.account_id)).all()
            return row.public, tuple(shared)

    def change_launch_permission(self, caller, image_id, add=(), remove=(), add_public=False,
                                 remove_public=False):
        """ModifyImageAttribute launchPermission: share with accounts or everyone, or stop sharing."""
        _check_accounts([*add, *remove])
        with self._db.write() as session:
            row = self._owned_image(session, caller, image_id)
            if add_public or remove_public:
                row.public = bool(add_public) and not remove_public
            shared = set(session.scalars(select(LaunchPermission.account_id).where(
                LaunchPermission.image_id == image_id)))
            for account in dict.fromkeys(add):
                if account not in shared and account != row.owner:
                    session.add(LaunchPermission(image_id=image_id, account_id=account))
                    shared.add(account)
            unshared = set(remove) & shared
            if unshared:
                session.execute(LaunchPermission.__table__.delete().where(
                    LaunchPermission.image_id == image_id, LaunchPermission.account_id.in_(unshared)))

    def reset_launch_permission(self, caller, image_id):
        """ResetImageAttribute launchPermission: private again, shared with nobody."""
        with self._db.write() as session:
            row = self._owned_image(session, caller, image_id)
            row.public = False
            session.execute(LaunchPermission.__table__.delete().where(LaunchPermission.image_id == image_id))

    def set_description(self, caller, image_id, description):
        if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidValue(f'Descriptions are at most {MAX_DESCRIPTION_LENGTH} characters long')
        with self._db.write() as session:
            self._owned_image(session, caller, image_id).description = description or None

    # -- deregistering ----------------------------------------------------------------------------

    def deregister(self, caller, image_id):
        """DeregisterImage: nobody may see or launch it any more; its file goes once nothing uses it."""
        with self._db.write() as session:
            row = self._owned_image(session, caller, image_id)
            row.state, row.deregistered_at = 'deregistered', utcnow()
        self.reclaim_storage([image_id])

    def reclaim_storage(self, image_ids=None):
        """Delete the files of deregistered images no live instance uses (all such, or those given)."""
        return image_lifetimes.reclaim(self._db, self.repository, image_ids)

    # -- helpers ----------------------------------------------------------------------------------

    def _owned_image(self, session, caller, image_id):
        """The image, if the caller may see it and owns it; others' images are not theirs to change."""
        _check_image_ids([image_id])
        row = session.scalar(select(ImageRow).where(ImageRow.image_id == image_id, visible_to(caller)))
        if row is None:
            raise _missing_images([image_id])
        if row.owner != caller:
            raise BackendError('AuthFailure', f'Not authorized for image:{image_id}')
        return row

    def _check_visible(self, session, caller, image_ids):
        visible = set(session.scalars(select(ImageRow.image_id).where(
            visible_to(caller), ImageRow.image_id.in_(image_ids))))
        missing = [image_id for image_id in dict.fromkeys(image_ids) if image_id not in visible]
        if missing:
            raise _missing_images(missing)

    def _reserve(self, row):
        """Insert the pending image, after checking its name is free and its kernel and ramdisk usable."""
        with self._db.write() as session:
            self.check_new_image(session, row)
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
            if row is None or row.state != 'pending':
                return None   # deregistered meanwhile: never bring it back (the sweep takes the file)
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
            path=self.repository.path_of(row.path) if row.path else None, created_at=row.created_at,
            state_reason=row.state_reason, deregistered_at=row.deregistered_at,
            reclaimed_at=row.reclaimed_at, root_device_type=row.root_device_type or 'instance-store')


def _new_row(owner, registration, image_type, state, image_id=None):
    return ImageRow(
        image_id=image_id or new_resource_id(ID_PREFIXES[image_type]), owner=owner, name=registration.name,
        description=registration.description, image_type=image_type, state=state, public=False,
        architecture=registration.architecture, disk_format='raw', kernel_id=registration.kernel_id,
        ramdisk_id=registration.ramdisk_id,
        root_device_name=(registration.root_device_name or ROOT_DEVICE_NAME) if image_type == 'machine' else None)


def _add_tags(session, row, tags):
    for key, value in dict(tags).items():
        session.add(Tag(resource_id=row.image_id, key=key, value=value, owner=row.owner, resource_type='image'))


def new_image_id(image_type):
    return new_resource_id(ID_PREFIXES[image_type])


def _check_registration(name, image_type, description, architecture, kernel_id, ramdisk_id,
                        root_device_name=None):
    if not isinstance(name, str) or not _IMAGE_NAME.fullmatch(name):
        raise InvalidValue(f"Invalid AMI name {name!r}: use 3 to 128 letters, digits, spaces or ()[]./-'@_",
                           code='InvalidAMIName.Malformed')
    if image_type not in ID_PREFIXES:
        raise InvalidValue(f"Invalid image type {image_type!r}; use machine, kernel or ramdisk")
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidValue(f'Descriptions are at most {MAX_DESCRIPTION_LENGTH} characters long')
    if architecture not in ARCHITECTURES:
        raise InvalidValue(f"Invalid architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}")
    if image_type != 'machine' and (kernel_id or ramdisk_id or root_device_name):
        raise InvalidValue('Only machine images take a kernel, a ramdisk or a root device name')
    if root_device_name is not None and not _ROOT_DEVICE.fullmatch(root_device_name):
        raise InvalidValue(f"Invalid root device name {root_device_name!r}; use one such as /dev/sda1 or /dev/vda")


def _check_new_registration(registration, image_type):
    _check_registration(registration.name, image_type, registration.description, registration.architecture,
                        registration.kernel_id, registration.ramdisk_id, registration.root_device_name)
    check_tags(registration.tags)
