"""What users may upload: qcow2 and raw disks that read no other file, recognised by their own
bytes, never by qemu-img's probing."""
import shutil
import struct
import subprocess

import pytest

from backend.errors import InvalidValue
from backend.images import inspect_upload, sniff_format

pytestmark = pytest.mark.skipif(not shutil.which('qemu-img'), reason='needs qemu-img')

MIB = 1024 * 1024


def qcow2(directory, name='disk.qcow2', size='16M', *options):
    path = directory / name
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', *options, str(path), size], check=True)
    return path


def raw_disk(directory, name='disk.img', size=MIB):
    """A raw disk with an MBR boot signature, as partitioned disks have."""
    path = directory / name
    with open(path, 'wb') as disk:
        disk.truncate(size)
        disk.seek(510)
        disk.write(b'\x55\xaa')
    return path


def refusal(path, **options):
    with pytest.raises(InvalidValue) as raised:
        inspect_upload(path, label="'upload'", **options)
    return raised.value


def test_a_qcow2_image_passes_with_its_virtual_size(tmp_path):
    info = inspect_upload(qcow2(tmp_path), label='x')
    assert (info.format, info.virtual_size) == ('qcow2', 16 * MIB)


def test_a_raw_disk_with_a_partition_table_or_a_file_system_passes(tmp_path):
    assert inspect_upload(raw_disk(tmp_path)).format == 'raw'
    ext4 = tmp_path / 'root.ext4'
    with open(ext4, 'wb') as disk:
        disk.truncate(8 * MIB)
    if shutil.which('mkfs.ext4'):
        subprocess.run(['mkfs.ext4', '-q', '-F', str(ext4)], check=True)
        assert inspect_upload(ext4, declared_format='raw').format == 'raw'


@pytest.mark.parametrize('content', [b'hello, this is not a disk\n' * 50, b'\0' * MIB, b'x' * 1024])
def test_junk_is_refused_as_not_a_disk(tmp_path, content):
    junk = tmp_path / 'junk.bin'
    junk.write_bytes(content)
    error = refusal(junk)
    assert error.code == 'InvalidImage.Format'
    assert "'upload' is not a disk image" in error.message


def test_a_declared_format_must_be_the_real_one(tmp_path):
    assert 'declared raw but is a qcow2 image' in refusal(qcow2(tmp_path), declared_format='raw').message
    assert 'declared qcow2 but is a raw image' in refusal(raw_disk(tmp_path), declared_format='qcow2').message


def test_a_backing_file_is_refused_before_qemu_img_opens_the_image(tmp_path, monkeypatch):
    base = qcow2(tmp_path, 'base.qcow2')
    overlay = qcow2(tmp_path, 'overlay.qcow2', '16M', '-b', str(base), '-F', 'qcow2')
    unsafe = qcow2(tmp_path, 'unsafe.qcow2', '16M', '-u', '-b', '/etc/shadow', '-F', 'raw')
    monkeypatch.setattr('backend.images.subprocess.run', _refuse_to_run)
    for image in (overlay, unsafe):
        assert 'has a backing file' in refusal(image).message


def test_an_external_data_file_or_encryption_is_refused(tmp_path, monkeypatch):
    external = qcow2(tmp_path, 'external.qcow2', '1M', '-o', f'data_file={tmp_path / "data.raw"}')
    encrypted = qcow2(tmp_path, 'encrypted.qcow2', '1M')
    with open(encrypted, 'r+b') as disk:
        disk.seek(32)
        disk.write(struct.pack('>I', 2))        # crypt_method: LUKS
    monkeypatch.setattr('backend.images.subprocess.run', _refuse_to_run)
    assert 'keeps its data in another file' in refusal(external).message
    assert 'is encrypted' in refusal(encrypted).message


@pytest.mark.parametrize('head, announced', [
    (b'# Disk DescriptorFile\nRW 2048 FLAT "/etc/shadow" 0\n', 'vmdk'),
    (b'KDMV' + b'\0' * 60, 'vmdk'),
    (b'vhdxfile' + b'\0' * 56, 'vhdx'),
    (b'LUKS\xba\xbe' + b'\0' * 58, 'luks'),
    (b'QFI\xfb\0\0\0\x01' + b'\0' * 56, 'qcow'),
])
def test_other_formats_are_named_and_refused_without_qemu_img(tmp_path, monkeypatch, head, announced):
    path = tmp_path / 'other'
    path.write_bytes(head.ljust(4096, b'\0'))
    assert sniff_format(path) == announced
    monkeypatch.setattr('backend.images.subprocess.run', _refuse_to_run)
    error = refusal(path)
    assert f'is a {announced} image; upload qcow2 or raw' in error.message


def test_a_truncated_qcow2_is_refused(tmp_path):
    image = qcow2(tmp_path, 'full.qcow2', '64M')
    subprocess.run(['qemu-io', '-c', 'write -P 0xab 0 8M', str(image)], check=True, capture_output=True)
    content = image.read_bytes()
    truncated = tmp_path / 'truncated.qcow2'
    truncated.write_bytes(content[:len(content) // 3])
    assert 'corrupt or truncated' in refusal(truncated).message
    header_only = tmp_path / 'header.qcow2'
    header_only.write_bytes(content[:40])
    assert 'truncated' in refusal(header_only).message


def test_a_qcow2_marked_corrupt_is_refused(tmp_path):
    image = qcow2(tmp_path)
    with open(image, 'r+b') as disk:
        disk.seek(72)
        (features,) = struct.unpack('>Q', disk.read(8))
        disk.seek(72)
        disk.write(struct.pack('>Q', features | 2))
    assert 'marked corrupt' in refusal(image).message


def test_the_virtual_size_is_limited(tmp_path):
    image = qcow2(tmp_path, 'big.qcow2', '2G')
    error = refusal(image, max_virtual_size=1024 * MIB)
    assert error.code == 'InvalidImage.TooLarge'
    assert inspect_upload(image, max_virtual_size=2048 * MIB).virtual_size == 2048 * MIB


def _refuse_to_run(command, *args, **kwargs):
    raise AssertionError(f'a command was run on an image that should have been refused: {command}')
