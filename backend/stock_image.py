"""The stock tiny guest as public images: built by `images/build_stock.py`, registered once.

Three public images, owned by the cloud itself (alias 'reservoir', as AWS's own are 'amazon'):
the kernel (aki-), the initramfs (ari-) and the root disk (ami-, launching with that kernel and
ramdisk). Each image's name carries the first
hex digits of its file's sha256, so a rebuilt image registers as new ones while an unchanged one is
found again; an image of that name whose stored file no longer has that digest is an error, never
silently reused.
"""
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from .errors import BackendError
from .models import Image as ImageRow

IMAGES_DIR = Path(__file__).resolve().parent.parent / 'images'
BUILD_SCRIPT = IMAGES_DIR / 'build_stock.py'
BUILD_DIR = IMAGES_DIR / 'build' / 'tiny'
BUILD_TIMEOUT_SECONDS = 900
DIGEST_CHARS = 12


@dataclasses.dataclass(frozen=True)
class StockFiles:
    directory: Path
    manifest: dict

    @property
    def kernel(self):
        return self.directory / 'vmlinux'

    @property
    def initrd(self):
        return self.directory / 'initrd.img'

    @property
    def root_disk(self):
        return self.directory / 'root.qcow2'

    def sha256(self, path):
        return self.manifest['files'][path.name]['sha256']


@dataclasses.dataclass(frozen=True)
class StockImages:
    machine: object
    kernel: object
    ramdisk: object
    reused: bool


def build(out=BUILD_DIR):
    """Build the stock image unless it is up to date (the recipe keeps its own cache)."""
    try:
        result = subprocess.run([sys.executable, str(BUILD_SCRIPT), '--out', str(out)],
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise BackendError('InternalError', 'building the stock image timed out') from None
    if result.returncode != 0:
        last_lines = '; '.join(result.stderr.strip().splitlines()[-3:])
        raise BackendError('InternalError', f'building the stock image failed: {last_lines}')
    return StockFiles(Path(out), json.loads((Path(out) / 'manifest.json').read_text()))


def install(cloud, owner):
    """Register the stock kernel, ramdisk and root disk as public images of `owner`, once."""
    files = build()
    name = files.manifest['name']
    description = files.manifest.get('description')
    architecture = files.manifest.get('architecture', 'x86_64')
    found = []

    def image(path, image_type, suffix, **links):
        digest = files.sha256(path)
        image_name = f'{name}{suffix}-{digest[:DIGEST_CHARS]}'
        existing = _existing(cloud, owner, image_name, image_type, digest)
        if existing is not None:
            found.append(existing)
            return existing
        return cloud.images.register_file(path, image_name, owner, public=True, image_type=image_type,
                                          description=description, architecture=architecture, **links)

    kernel = image(files.kernel, 'kernel', '-kernel')
    ramdisk = image(files.initrd, 'ramdisk', '-ramdisk')
    machine = image(files.root_disk, 'machine', '', kernel_id=kernel.image_id, ramdisk_id=ramdisk.image_id)
    return StockImages(machine, kernel, ramdisk, reused=len(found) == 3)


def _existing(cloud, owner, name, image_type, digest):
    """The available image of that name, after checking its stored file is still the same."""
    with cloud.db.read() as session:
        image_id = session.scalar(select(ImageRow.image_id).where(
            ImageRow.owner == owner, ImageRow.name == name, ImageRow.image_type == image_type,
            ImageRow.state == 'available'))
    if image_id is None:
        return None
    (image,) = cloud.images.describe(owner, image_ids=[image_id])
    if image.path is None or _sha256(image.path) != digest:
        raise BackendError('InternalError', f'{image_id} ({name}) no longer matches its file; '
                                            'deregister it and install again')
    return image


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
