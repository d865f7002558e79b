"""Where a libvirt host finds an instance's disks: one small interface, two kinds of storage.

`LocalStorage`: the host reads this machine's files (the local QEMU driver, and hosts registered
with `--shared-storage PATH`, which see this machine's state directory at PATH): the overlay,
context CD and console log are `instance_files`' and nothing is copied.

`PoolStorage`: every other host gets what an instance needs through the libvirt connection itself,
in a `dir` storage pool of the installation on the host: base images (and kernels, ramdisks)
uploaded once per host as volumes named by a digest of their content (a changed image is a new
volume), the instance's qcow2 overlay as a volume backed by its base, the context CD built here and
uploaded, and the serial console written by QEMU into the pool and read back by downloading its
tail. The pool's path is the same on every host, so a domain's XML stays valid when it moves.
"""
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import libvirt
from lxml import etree

from .base import DriverError
from .instance_files import CONSOLE_TAIL_BYTES, build_context_iso
from .libvirt_host import HostError

POOL_ROOT = '/var/lib/libvirt'
QEMU_IMG_TIMEOUT_SECONDS = 120
INSTANCE_VOLUMES = ('disk.qcow2', 'context.iso', 'console.log', 'migration.save')


@dataclasses.dataclass(frozen=True)
class Placed:
    """Paths, as the host sees them, of what an instance's domain XML names."""
    disk: str | None
    backing: str | None
    kernel: str | None
    initrd: str | None
    context_iso: str
    console_log: str
    volumes: tuple = ()


class LocalStorage:
    """This machine's instance files, read by the host directly (at `seen_at` when it mounts this
    machine's state directory elsewhere)."""
    shared = True

    def __init__(self, files, seen_at=None):
        self.files = files
        self.seen_at = seen_at

    def prepare(self, spec):
        disk, iso = self.files.prepare(spec)
        seen = self._seen
        return Placed(seen(disk), seen(spec.root and spec.root.path), seen(spec.kernel and spec.kernel.path),
                      seen(spec.ramdisk and spec.ramdisk.path), seen(iso),
                      seen(self.files.console_path(spec.instance_id)),
                      tuple(dataclasses.replace(volume, path=seen(volume.path)) for volume in spec.volumes))

    def console_output(self, instance_id):
        return self.files.console_output(instance_id)

    def remove(self, instance_id):
        self.files.remove(instance_id)

    # A move between hosts that share these files copies nothing and leaves nothing behind.

    def send(self, instance_id, target, spec, copies=()):
        pass

    def release(self, instance_id):
        pass

    def save_path(self, instance_id):
        path = self.files.directory(instance_id) / 'migration.save'
        path.parent.mkdir(parents=True, exist_ok=True)
        return self._seen(path)

    def drop_saved(self, instance_id):
        (self.files.directory(instance_id) / 'migration.save').unlink(missing_ok=True)

    def _seen(self, path):
        """A path of this machine as the host sees it."""
        if path is None:
            return None
        path = str(path)
        if self.seen_at is None:
            return path
        home = str(self.files.instances_dir.parent)
        if path == home or path.startswith(home + os.sep):
            return str(Path(self.seen_at) / os.path.relpath(path, home))
        return path


class PoolStorage:
    """The installation's storage pool on a host, driven through the host's connection (a LibvirtHost)."""
    shared = False

    def __init__(self, host, names):
        self.host = host
        self.names = names
        self._lock = threading.Lock()      # one upload of a base at a time

    @property
    def directory(self):
        return f'{POOL_ROOT}/{self.names.storage_pool}'

    def volume_name(self, instance_id, what):
        return f'{self.names.domain(instance_id)}-{what}'

    def path(self, name):
        return f'{self.directory}/{name}'

    # -- an instance's volumes -------------------------------------------------------------------

    def prepare(self, spec):
        """Bases uploaded if missing, the overlay made at the first boot only, a fresh context CD."""
        if spec.volumes:
            raise DriverError('volumes cannot be attached to instances on a host without shared storage '
                              '(register it with --shared-storage)')
        with self._lock:
            backing = self.base(spec.root) if spec.root else None
            kernel = self.base(spec.kernel) if spec.kernel else None
            initrd = self.base(spec.ramdisk) if spec.ramdisk else None
        disk = None
        if spec.root:                       # an EBS root is one of its volumes
            disk = self.overlay(spec.instance_id, backing, spec.root.disk_format, _virtual_size(spec.root.path))
        iso = self.context_iso(spec)
        return Placed(disk, backing, kernel, initrd, iso, self.path(self.volume_name(spec.instance_id, 'console.log')))

    def base(self, image):
        """The pool path of an image's volume, uploaded unless the host has it whole."""
        name = f'base-{_content_digest(image.path)}.{image.disk_format or "raw"}'
        size = os.path.getsize(image.path)
        existing = self._volume(name)
        if existing is not None and _physical_size(existing) in (size, None):
            return existing.path()
        if existing is not None:               # cut short by a crash: upload it again
            self._call(lambda connection: existing.delete(0))
        with open(image.path, 'rb') as source:
            return self.upload(name, source, size)

    def overlay(self, instance_id, backing, backing_format, size):
        name = self.volume_name(instance_id, 'disk.qcow2')
        existing = self._volume(name)
        if existing is not None:
            return existing.path()
        return self._create(volume_xml(name, size, 'qcow2', backing, backing_format or 'raw')).path()

    def context_iso(self, spec):
        """The context CD, rewritten every boot (the address may have changed)."""
        with tempfile.NamedTemporaryFile(suffix='.iso') as built:
            try:
                build_context_iso(spec, built.name)
            except OSError as error:
                raise DriverError(f'cannot write the context CD: {error}') from None
            return self.replace(self.volume_name(spec.instance_id, 'context.iso'), built.name)

    def console_output(self, instance_id):
        """The last 64 KiB of the console QEMU writes into the pool (b'' before the first boot)."""
        volume = self._volume(self.volume_name(instance_id, 'console.log'), refresh=True)
        if volume is None:
            return b''
        size = _physical_size(volume) or volume.info()[1]
        offset = max(0, size - CONSOLE_TAIL_BYTES)
        with tempfile.TemporaryFile() as tail:
            self.download(volume, tail, offset, size - offset)
            tail.seek(0)
            return tail.read()

    def remove(self, instance_id):
        """Delete the instance's volumes; the bases stay for the next instance."""
        for what in INSTANCE_VOLUMES:
            self.delete(self.volume_name(instance_id, what), refresh=what == INSTANCE_VOLUMES[0])

    # -- moves between hosts ---------------------------------------------------------------------

    def send(self, instance_id, target, spec, copies=()):
        """Give `target` (another PoolStorage) what the instance needs to run there: the volumes
        named in `copies` ('disk.qcow2', 'migration.save') copied, then its bases, its overlay (an
        empty one unless copied: a live move fills it) and its context CD."""
        for what in copies:
            self.copy_to(target, self.volume_name(instance_id, what))
        target.prepare(spec)

    def release(self, instance_id):
        """Forget the instance here once it runs elsewhere."""
        self.remove(instance_id)

    def save_path(self, instance_id):
        self._call(self.pool)
        return self.path(self.volume_name(instance_id, 'migration.save'))

    def drop_saved(self, instance_id):
        self.delete(self.volume_name(instance_id, 'migration.save'), refresh=True)

    def copy_to(self, target, name):
        """Copy a volume of this pool to the same name in `target`'s pool, through this process."""
        volume = self._volume(name, refresh=True)
        if volume is None:
            raise DriverError(f'{name} is not in the pool of {self.host.uri}')
        with tempfile.TemporaryFile() as copy:
            self.download(volume, copy)
            copy.flush()
            size = copy.tell()
            copy.seek(0)
            target.delete(name)
            target.upload(name, copy, size)

    def replace(self, name, path):
        self.delete(name)
        with open(path, 'rb') as source:
            return self.upload(name, source, os.path.getsize(path))

    def upload(self, name, source, size):
        """A new volume `name` holding `size` bytes read from the file object `source`; its path."""
        volume = self._create(volume_xml(name, 0, 'raw'))

        def upload(connection):
            stream = connection.newStream(0)
            volume.upload(stream, 0, size, 0)
            _send_all(stream, source)
        try:
            self._call(upload)
        except DriverError:
            self._call(lambda connection: volume.delete(0))
            raise
        return volume.path()

    def download(self, volume, sink, offset=0, length=0):
        def download(connection):
            stream = connection.newStream(0)
            volume.download(stream, offset, length, 0)
            _receive_all(stream, sink)
        self._call(download)

    def delete(self, name, refresh=False):
        volume = self._volume(name, refresh=refresh)
        if volume is not None:
            self._call(lambda connection: volume.delete(0))

    def has(self, name):
        return self._volume(name, refresh=True) is not None

    # -- the pool --------------------------------------------------------------------------------

    def pool(self, connection):
        """The installation's pool on the host: defined, built and started when missing."""
        try:
            pool = connection.storagePoolLookupByName(self.names.storage_pool)
        except libvirt.libvirtError as error:
            if error.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            pool = connection.storagePoolDefineXML(pool_xml(self.names.storage_pool, self.directory), 0)
            pool.build(0)
            pool.setAutostart(1)
        if pool.isActive() != 1:
            pool.create(0)
        return pool

    def _volume(self, name, refresh=False):
        def lookup(connection):
            pool = self.pool(connection)
            if refresh:
                pool.refresh(0)     # files QEMU made (the console log) are volumes once the pool is read again
            try:
                return pool.storageVolLookupByName(name)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    return None
                raise
        return self._call(lookup)

    def _create(self, xml):
        return self._call(lambda connection: self.pool(connection).createXML(xml, 0))

    def _call(self, operation):
        try:
            return self.host.call(operation)
        except HostError as error:
            raise DriverError(str(error)) from None


def pool_xml(name, path):
    pool = etree.Element('pool', type='dir')
    etree.SubElement(pool, 'name').text = name
    etree.SubElement(etree.SubElement(pool, 'target'), 'path').text = path
    return etree.tostring(pool, encoding='unicode')


def volume_xml(name, capacity, volume_format, backing=None, backing_format=None):
    """A volume's XML: a file of `capacity` bytes, or a qcow2 overlay of the file `backing`."""
    volume = etree.Element('volume')
    etree.SubElement(volume, 'name').text = name
    etree.SubElement(volume, 'capacity', unit='bytes').text = str(capacity)
    etree.SubElement(etree.SubElement(volume, 'target'), 'format', type=volume_format)
    if backing:
        store = etree.SubElement(volume, 'backingStore')
        etree.SubElement(store, 'path').text = backing
        etree.SubElement(store, 'format', type=backing_format)
    return etree.tostring(volume, encoding='unicode')


def _send_all(stream, source):
    try:
        stream.sendAll(lambda _stream, count, _opaque: source.read(count), None)
        stream.finish()
    except BaseException:
        _abort(stream)
        raise


def _receive_all(stream, sink):
    try:
        stream.recvAll(lambda _stream, data, _opaque: sink.write(data), None)
        stream.finish()
    except BaseException:
        _abort(stream)
        raise


def _abort(stream):
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass


def _physical_size(volume):
    """The bytes of the volume's file, or None when the host's driver cannot say."""
    try:
        return volume.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2]
    except libvirt.libvirtError:
        return None


@functools.lru_cache(maxsize=256)
def _digest_of(path, size, modified):
    digest = hashlib.sha256()
    with open(path, 'rb') as image:
        while chunk := image.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def _content_digest(path):
    """A digest of the image's content, computed once per version of the file."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise DriverError(f'cannot read the image {path}: {error}') from None
    return _digest_of(str(path), stat.st_size, stat.st_mtime_ns)


def _virtual_size(path):
    """The disk size the guest sees: an overlay is as large as its image."""
    command = ['qemu-img', 'info', '--output=json', '-U', str(path)]
    try:
        result = subprocess.run(command, check=True, capture_output=True, timeout=QEMU_IMG_TIMEOUT_SECONDS)
        return json.loads(result.stdout)['virtual-size']
    except subprocess.CalledProcessError as error:
        raise DriverError(f'cannot read the image {path}: {error.stderr.decode(errors="replace").strip()}')
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError) as error:
        raise DriverError(f'cannot read the image {path}: {error}')
