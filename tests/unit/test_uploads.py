"""Uploads in the back-end: pieces at exact offsets, resumption, gzip decompressed on the way, the
checksum, limits and quota, and nothing left behind by a refusal."""
import datetime
import gzip
import hashlib
import io
import re
import shutil
import subprocess
import zlib

import pytest
from sqlalchemy import select, update

from backend.cloud import Cloud
from backend.config import load_config
from backend.errors import BackendError, Conflict, InvalidValue, NotFound
from backend.images import Registration
from backend.instances import LaunchRequest
from backend.models import Instance as InstanceRow, Upload as UploadRow
from backend.uploads import Piece, _exclusive, _Files
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.skipif(not shutil.which('qemu-img'), reason='needs qemu-img')

MIB = 1024 * 1024


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    monkeypatch.setenv('RESERVOIR_IMAGES_ACCOUNT_QUOTA', '64M')
    monkeypatch.setenv('RESERVOIR_IMAGES_MAX_IMAGE_SIZE', '32M')
    with Cloud.open(load_config({'RESERVOIR_HOME': str(tmp_path / 'home')})) as opened:
        yield opened


@pytest.fixture
def alice(cloud):
    return cloud.users.create('alice').account_id


@pytest.fixture
def disk(tmp_path):
    """A qcow2 image with 4 MiB of data: about 4 MiB as a file, much less gzip-compressed."""
    path = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '64M'], check=True)
    subprocess.run(['qemu-io', '-c', 'write -P 0xab 0 4M', str(path)], check=True, capture_output=True)
    return path.read_bytes()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def send(cloud, owner, name, data, start=0, end=None, whole=None, **options):
    """Send data[start:end] as a piece of the object `whole` (default: data)."""
    whole = data if whole is None else whole
    end = len(data) if end is None else end
    piece = Piece(name, start, end - start, len(whole), sha256(whole), **options)
    return cloud.uploads.receive(owner, piece, io.BytesIO(whole[start:end]))


def leftovers(cloud):
    """Upload rows and files still there."""
    directory = cloud.config.home / 'uploads'
    files = sorted(path.name for path in directory.iterdir()) if directory.exists() else []
    return cloud.uploads.list(), files


class Cut:
    """A request body that stops after `limit` bytes, as when the client's connection drops."""

    def __init__(self, data, limit):
        self.stream = io.BytesIO(data[:limit])

    def read(self, size):
        return self.stream.read(size)


def test_a_whole_upload_in_one_piece_becomes_ready_and_registers(cloud, alice, disk):
    status = send(cloud, alice, 'base', disk)
    assert (status.state, status.received_bytes, status.disk_format) == ('ready', len(disk), 'qcow2')
    assert status.virtual_size_bytes == 64 * MIB
    image = cloud.uploads.register(alice, 'base', Registration('base', description='mine'))
    assert (image.state, image.owner, image.public, image.description) == ('available', alice, False, 'mine')
    assert image.path.read_bytes() == disk
    assert leftovers(cloud) == ([], [])


def test_pieces_must_come_at_the_offset_that_has_arrived(cloud, alice, disk):
    third = len(disk) // 3
    assert send(cloud, alice, 'base', disk, 0, third).received_bytes == third
    with pytest.raises(Conflict) as raised:
        send(cloud, alice, 'base', disk, third + 512, len(disk))
    assert raised.value.code == 'InvalidUpload.Offset' and f'from byte {third}' in raised.value.message
    with pytest.raises(NotFound):
        send(cloud, alice, 'other', disk, third, len(disk))          # a new upload starts at 0
    assert send(cloud, alice, 'base', disk, third, len(disk)).state == 'ready'


def test_an_interrupted_piece_keeps_what_arrived_and_resumes_after_it(cloud, alice, disk):
    piece = Piece('base', 0, len(disk), len(disk), sha256(disk))
    status = cloud.uploads.receive(alice, piece, Cut(disk, 1_500_000))
    assert (status.state, status.received_bytes) == ('receiving', 1_500_000)
    assert cloud.uploads.status(alice, 'base').received_bytes == 1_500_000
    assert send(cloud, alice, 'base', disk, 1_500_000).state == 'ready'
    image = cloud.uploads.register(alice, 'base', Registration('base'))
    assert image.path.read_bytes() == disk


def test_gzip_is_decompressed_as_it_arrives_even_across_resumed_pieces(cloud, alice, disk):
    compressed = gzip.compress(disk)
    assert len(compressed) < len(disk) // 10
    cuts = [0, 1, 300, len(compressed) // 2, len(compressed)]          # a cut inside the gzip header too
    for start, end in zip(cuts, cuts[1:]):
        status = send(cloud, alice, 'zipped', compressed, start, end)
    assert (status.state, status.total_bytes, status.size_bytes) == ('ready', len(compressed), len(disk))
    assert cloud.uploads.register(alice, 'zipped', Registration('zipped')).path.read_bytes() == disk
    assert leftovers(cloud) == ([], [])


@pytest.mark.parametrize('compress', [False, True])
def test_pieces_go_on_from_where_the_last_one_left_the_hash(cloud, alice, disk, compress):
    """Resuming used to re-read and re-hash all that had arrived before each piece (quadratic)."""
    data = gzip.compress(disk) if compress else disk
    cuts = list(range(0, len(data), max(1, len(data) // 8))) + [len(data)]
    for start, end in zip(cuts, cuts[1:]):
        status = send(cloud, alice, 'pieces', data, start, end)
    assert status.state == 'ready' and cloud.uploads.replayed_bytes == 0
    assert cloud.uploads.register(alice, 'pieces', Registration('pieces')).path.read_bytes() == disk


def test_a_process_that_did_not_see_the_earlier_pieces_replays_them(cloud, alice, disk, tmp_path):
    half = len(disk) // 2
    send(cloud, alice, 'elsewhere', disk, 0, half)
    other = Cloud.open(cloud.config)            # another API process, or this one after a restart
    try:
        status = send(other, alice, 'elsewhere', disk, half, len(disk))
        assert status.state == 'ready' and other.uploads.replayed_bytes == half
    finally:
        other.close()


def test_gzip_files_of_several_members_are_read_whole(cloud, alice, disk):
    middle = len(disk) // 2
    members = gzip.compress(disk[:middle]) + gzip.compress(disk[middle:])
    assert send(cloud, alice, 'two members', members).size_bytes == len(disk)


@pytest.mark.parametrize('damage, message', [
    (lambda data: data[:-20], 'truncated'),
    (lambda data: data[:len(data) // 2] + bytes(byte ^ 0xff for byte in data[len(data) // 2:]),
     'corrupt|truncated'),
    (lambda data: data + b'trailing junk', 'corrupt'),
])
def test_broken_gzip_is_refused_and_nothing_stays(cloud, alice, disk, damage, message):
    with pytest.raises(InvalidValue) as raised:
        send(cloud, alice, 'broken', damage(gzip.compress(disk)))
    assert re.search(message, raised.value.message)
    assert leftovers(cloud) == ([], [])


def test_a_gzip_bomb_is_stopped_at_the_size_limit(cloud, alice):
    bomb = gzip.compress(bytes(200 * MIB), compresslevel=9)
    assert len(bomb) < MIB
    with pytest.raises(BackendError) as raised:
        send(cloud, alice, 'bomb', bomb)
    assert raised.value.code == 'InvalidImage.TooLarge'
    assert leftovers(cloud) == ([], [])


def test_data_that_is_not_what_was_declared_is_refused(cloud, alice, disk):
    piece = Piece('base', 0, len(disk), len(disk), sha256(disk + b'other'))
    with pytest.raises(InvalidValue) as raised:
        cloud.uploads.receive(alice, piece, io.BytesIO(disk))
    assert raised.value.code == 'InvalidUpload.Checksum'
    assert leftovers(cloud) == ([], [])


def test_an_upload_is_bound_to_its_content(cloud, alice, disk):
    send(cloud, alice, 'base', disk, 0, 1000)
    with pytest.raises(Conflict) as raised:
        send(cloud, alice, 'base', disk + bytes(512), 1000, 2000)
    assert raised.value.code == 'InvalidUpload.Mismatch'
    cloud.uploads.abort(alice, 'base')
    assert leftovers(cloud) == ([], [])
    with pytest.raises(NotFound):
        cloud.uploads.abort(alice, 'base')


def test_junk_is_refused_with_a_clear_reason_and_nothing_stays(cloud, alice):
    junk = b'this is a text file, not a disk\n' * 1000
    with pytest.raises(InvalidValue) as raised:
        send(cloud, alice, 'junk', junk)
    assert raised.value.code == 'InvalidImage.Format'
    assert "'junk' is not a disk image" in raised.value.message
    assert leftovers(cloud) == ([], [])


def test_kernels_and_ramdisks_are_kept_as_they_are(cloud, alice, disk):
    kernel = b'\x7fELF pretend kernel' * 100
    assert send(cloud, alice, 'vmlinuz', kernel, image_type='kernel').state == 'ready'
    image = cloud.uploads.register(alice, 'vmlinuz', Registration('vmlinuz'))
    assert image.image_id.startswith('aki-') and image.path.read_bytes() == kernel
    send(cloud, alice, 'root', disk)
    machine = cloud.uploads.register(alice, 'root', Registration('root', kernel_id=image.image_id,
                                                                 root_device_name='/dev/vda'))
    assert (machine.kernel_id, machine.root_device_name) == (image.image_id, '/dev/vda')


def test_the_size_limit_and_the_quota_are_checked_before_any_byte(cloud, alice, disk):
    with pytest.raises(BackendError) as raised:
        cloud.uploads.receive(alice, Piece('huge', 0, 0, 33 * MIB, 'a' * 64), io.BytesIO())
    assert raised.value.code == 'InvalidImage.TooLarge'
    for name in ('one', 'two'):
        cloud.uploads.receive(alice, Piece(name, 0, 0, 30 * MIB, 'a' * 64), io.BytesIO())
    with pytest.raises(BackendError) as raised:
        cloud.uploads.receive(alice, Piece('three', 0, 0, 30 * MIB, 'a' * 64), io.BytesIO())
    assert raised.value.code == 'ResourceLimitExceeded'
    assert 'quota exceeded' in raised.value.message and '60.0 MiB of its 64.0 MiB' in raised.value.message
    assert [status.name for status in cloud.uploads.list()] == ['one', 'two']


def test_decompressed_data_counts_against_the_quota(cloud, alice, disk):
    cloud.uploads.receive(alice, Piece('reserved', 0, 0, 30 * MIB, 'a' * 64), io.BytesIO())
    big = gzip.compress(bytes(31 * MIB) + disk)            # small as sent, 31 MiB and more unpacked
    cloud.uploads.receive(alice, Piece('filler', 0, 0, 4 * MIB, 'a' * 64), io.BytesIO())
    with pytest.raises(BackendError) as raised:
        send(cloud, alice, 'unpacked', big)
    assert raised.value.code in ('ResourceLimitExceeded', 'InvalidImage.TooLarge')
    assert sorted(status.name for status in cloud.uploads.list()) == ['filler', 'reserved']


def test_registered_images_count_against_the_quota_until_reclaimed(cloud, alice, disk):
    send(cloud, alice, 'base', disk)
    image = cloud.uploads.register(alice, 'base', Registration('base'))
    assert cloud.images.usage_by_account() == {alice: len(disk)}
    cloud.images.deregister(alice, image.image_id)
    assert cloud.images.usage_by_account() == {}
    assert not image.path.exists()


def test_registering_needs_a_finished_upload_and_a_free_name(cloud, alice, disk):
    with pytest.raises(NotFound):
        cloud.uploads.register(alice, 'nothing', Registration('nothing'))
    send(cloud, alice, 'half', disk, 0, 1000)
    with pytest.raises(NotFound):
        cloud.uploads.register(alice, 'half', Registration('half'))
    send(cloud, alice, 'base', disk)
    cloud.uploads.register(alice, 'base', Registration('base'))
    send(cloud, alice, 'again', disk)
    with pytest.raises(Conflict):
        cloud.uploads.register(alice, 'again', Registration('base'))            # name taken
    with pytest.raises(InvalidValue):
        cloud.uploads.register(alice, 'again', Registration('again', root_device_name='sda'))
    assert cloud.uploads.status(alice, 'again').state == 'ready'                 # still there to retry
    assert cloud.uploads.register(alice, 'again', Registration('again')).state == 'available'


def test_one_writer_at_a_time(cloud, alice, disk):
    send(cloud, alice, 'base', disk, 0, 1000)
    upload_id = _upload_id(cloud)
    with _exclusive(_Files(cloud.config.home / 'uploads', upload_id).lock, 'base'):
        with pytest.raises(Conflict) as raised:
            send(cloud, alice, 'base', disk, 1000)
    assert raised.value.code == 'InvalidUpload.InProgress'
    assert send(cloud, alice, 'base', disk, 1000).state == 'ready'


def test_uploads_of_other_accounts_are_out_of_reach(cloud, alice, disk):
    bob = cloud.users.create('bob').account_id
    send(cloud, alice, 'base', disk, 0, 1000)
    with pytest.raises(NotFound):
        cloud.uploads.status(bob, 'base')
    with pytest.raises(NotFound):
        cloud.uploads.register(bob, 'base', Registration('base'))
    assert send(cloud, bob, 'base', disk).state == 'ready'        # names are per account


def test_abandoned_uploads_expire(cloud, alice, disk):
    send(cloud, alice, 'old', disk, 0, 1000)
    send(cloud, alice, 'done', disk)
    with cloud.db.write() as session:
        session.execute(update(UploadRow).values(
            updated_at=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)))
    assert cloud.uploads.expire_stale() == 1
    assert [status.name for status in cloud.uploads.list()] == ['done']


@pytest.mark.parametrize('piece, code', [
    (Piece('ab', 0, 0, 10, 'a' * 64), 'InvalidParameterValue'),
    (Piece('with/slash', 0, 0, 10, 'a' * 64), 'InvalidParameterValue'),
    (Piece('fine', 0, 0, 10, 'A' * 64), 'InvalidUpload.Checksum'),
    (Piece('fine', 0, 0, 0, 'a' * 64), 'InvalidImage.Format'),
    (Piece('fine', 5, 10, 10, 'a' * 64), 'InvalidUpload.Range'),
    (Piece('fine', 0, 0, 10, 'a' * 64, disk_format='vmdk'), 'InvalidImage.Format'),
    (Piece('fine', 0, 0, 10, 'a' * 64, image_type='kernel', disk_format='qcow2'), 'InvalidImage.Format'),
    (Piece('fine', 0, 0, 10, 'a' * 64, image_type='floppy'), 'InvalidParameterValue'),
])
def test_malformed_pieces_are_refused_before_anything_is_made(cloud, alice, piece, code):
    with pytest.raises(BackendError) as raised:
        cloud.uploads.receive(alice, piece, io.BytesIO())
    assert raised.value.code == code
    assert leftovers(cloud) == ([], [])


def test_a_failure_while_writing_deletes_the_upload(cloud, alice, disk, monkeypatch):
    def failing_decompressor(*args):
        raise zlib.error('simulated')
    monkeypatch.setattr('backend.uploads.zlib.decompressobj', failing_decompressor)
    with pytest.raises(zlib.error):
        send(cloud, alice, 'zipped', gzip.compress(disk))
    assert leftovers(cloud) == ([], [])


def _upload_id(cloud):
    with cloud.db.read() as session:
        return session.scalar(select(UploadRow.upload_id))


@pytest.mark.postgres
def test_upload_register_share_and_reclaim_on_postgresql(tmp_path, monkeypatch, disk):
    monkeypatch.setenv('RESERVOIR_IMAGES_ACCOUNT_QUOTA', '64M')
    with fresh_database() as url, Cloud.open(load_config({
            'RESERVOIR_HOME': str(tmp_path / 'home'), 'RESERVOIR_DATABASE_URL': url})) as cloud:
        alice, bob = (cloud.users.create(name).account_id for name in ('alice', 'bob'))
        cloud.hosts.add_simulated(1, cpus=4, memory_mib=4096)
        compressed = gzip.compress(disk, mtime=0)   # the same bytes for both pieces, whatever the clock
        send(cloud, alice, 'base', compressed, 0, 100)
        send(cloud, alice, 'base', compressed, 100)
        image = cloud.uploads.register(alice, 'base', Registration('base'))
        assert cloud.images.usage_by_account() == {alice: len(disk)}
        cloud.images.change_launch_permission(alice, image.image_id, add=[bob])
        (instance,) = cloud.instances.run(bob, LaunchRequest(image.image_id, 1, 1, 'm1.small'))
        cloud.images.deregister(alice, image.image_id)
        assert image.path.exists() and cloud.images.reclaim_storage() == []
        cloud.instances.terminate(bob, [instance.instance_id])
        with cloud.db.write() as session:       # as the worker records the end of the instance
            session.execute(update(InstanceRow).values(state='terminated'))
        assert cloud.images.reclaim_storage() == [image.image_id] and not image.path.exists()
