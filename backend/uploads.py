"""Uploads: disk images, kernels and ramdisks that users send over HTTP, checked, then kept for
RegisterImage.

An upload is named by its owner and bound, by the request that creates it, to the size and SHA-256
of the whole object as sent (gzip-compressed or not). Each request appends bytes at an offset that
must be exactly what has arrived so far, so an interrupted transfer resumes where it stopped.

Bytes go to disk as they arrive, a chunk at a time: no upload is ever held in memory. A gzip stream
is decompressed as it arrives, and its compressed bytes are kept too until the end, because a
request that resumes the upload rebuilds the decompressor (and the running SHA-256) from them.

Once the last byte is in, the SHA-256 must be the one declared, the image must fit the size limit
and the account's quota, and a disk must pass `images.inspect_upload`. A refusal, then or on the way,
deletes the upload with all its files. A finished upload waits, `ready`, for RegisterImage, which
moves its file into the image repository.

Files, in `<state dir>/uploads/`, are named by upload id, never by anything the user chose:
`<id>.received` (the bytes as sent), `<id>.inflated` (a gzip upload, decompressed), `<id>.image`
(the checked image, once ready) and `<id>.lock` (held by the one request writing the upload).
"""
import collections
import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import os
import re
import threading
import zlib
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from . import image_lifetimes
from .errors import BackendError, Conflict, InvalidValue, NotFound
from .images import ID_PREFIXES, UPLOAD_FORMATS, StoredFile, inspect_upload, new_image_id
from .models import Upload as UploadRow, new_resource_id, utcnow
from .quotas import lock_account, storage_limit, used_bytes

CHUNK_BYTES = 1 << 20
KEPT_RECEIVERS = 64              # unfinished uploads whose hash state this process keeps
# An image name without '/', so that it fits in one URL path segment.
UPLOAD_NAME = re.compile(r"[A-Za-z0-9()\[\] .\-'@_]{3,128}")
SHA256_HEX = re.compile(r'[0-9a-f]{64}')
GZIP_MAGIC = b'\x1f\x8b'
_GZIP_WINDOW = 16 + zlib.MAX_WBITS     # zlib's "gzip wrapper" mode


@dataclasses.dataclass(frozen=True)
class Piece:
    """One request's part of an upload: `length` bytes at `offset` of an object of `total_bytes`."""
    name: str
    offset: int
    length: int
    total_bytes: int
    sha256: str
    image_type: str = 'machine'
    disk_format: str | None = None     # as declared by the sender; None: whatever the file is


@dataclasses.dataclass(frozen=True)
class UploadStatus:
    name: str
    owner: str
    state: str                         # receiving, ready
    image_type: str
    total_bytes: int
    received_bytes: int
    sha256: str
    size_bytes: int                    # counted against the quota
    disk_format: str | None
    virtual_size_bytes: int | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


class UploadService:
    def __init__(self, db, directory, images):
        self.db = db
        self.directory = Path(directory)
        self.images = images
        self.limits = images.limits
        # Where each unfinished upload's hash and decompressor stood after its last piece in this
        # process, so the next piece goes on from there instead of re-reading all that arrived.
        self._receivers = collections.OrderedDict()
        self._receivers_lock = threading.Lock()
        self.replayed_bytes = 0       # re-read from disk to resume (after a restart, or elsewhere)

    # -- reading ----------------------------------------------------------------------------------

    def status(self, owner, name):
        with self.db.read() as session:
            row = _find(session, owner, name)
        if row is None:
            raise _no_upload(name)
        return self._status(row)

    def list(self, owner=None):
        """Uploads of one account, or of all (for administrators)."""
        query = select(UploadRow).order_by(UploadRow.owner, UploadRow.name)
        if owner is not None:
            query = query.where(UploadRow.owner == owner)
        with self.db.read() as session:
            rows = session.scalars(query).all()
        return [self._status(row) for row in rows]

    # -- receiving --------------------------------------------------------------------------------

    def receive(self, owner, piece, stream):
        """Append one piece read from `stream` (anything with `read(n)`; b'' means the sender left).

        Returns the upload's status: `ready` once the last byte arrived and the image passed.
        """
        _check_piece(piece, self.limits)
        self.expire_stale()
        upload_id = self._open(owner, piece)
        files = _Files(self.directory, upload_id)
        with _exclusive(files.lock, piece.name):
            row = self._row(upload_id)     # again, now that no one else writes it
            if row is None:
                raise _no_upload(piece.name)
            if piece.length == 0 and piece.offset == files.received_bytes(row):
                return self._status(row)   # creating, or asking: nothing to write
            if row.state != 'receiving':
                raise Conflict('InvalidUpload.Complete', f"The upload '{piece.name}' is complete already")
            self._append(row, files, piece, stream)
            return self.status(owner, piece.name)

    def abort(self, owner, name):
        """Delete an upload, finished or not, with its files."""
        with self.db.read() as session:
            row = _find(session, owner, name)
        if row is None:
            raise _no_upload(name)
        files = _Files(self.directory, row.upload_id)
        with _exclusive(files.lock, name):
            self._discard(row.upload_id, files)

    def expire_stale(self):
        """Drop unfinished uploads nobody wrote to for `upload_expiry_hours`; returns how many."""
        horizon = utcnow() - datetime.timedelta(hours=self.limits.upload_expiry_hours)
        with self.db.read() as session:
            stale = session.scalars(select(UploadRow.upload_id).where(
                UploadRow.state == 'receiving', UploadRow.updated_at < horizon)).all()
        dropped = 0
        for upload_id in stale:
            files = _Files(self.directory, upload_id)
            with contextlib.suppress(Conflict), _exclusive(files.lock, upload_id):
                self._discard(upload_id, files)
                dropped += 1
        return dropped

    def _open(self, owner, piece):
        """The id of the upload this piece belongs to, created (within the quota) by its first piece."""
        try:
            with self.db.write() as session:
                row = _find(session, owner, piece.name)
                if row is not None:
                    _check_same_object(row, piece)
                    row.updated_at = utcnow()
                    return row.upload_id
                if piece.offset != 0:
                    raise _no_upload(piece.name)
                lock_account(session, owner)
                image_lifetimes.check_quota(session, self.limits, owner, piece.total_bytes)
                row = UploadRow(upload_id=new_resource_id('upload'), owner=owner, name=piece.name,
                                image_type=piece.image_type, state='receiving', declared_format=piece.disk_format,
                                total_bytes=piece.total_bytes, sha256=piece.sha256, size_bytes=piece.total_bytes)
                session.add(row)
                return row.upload_id
        except IntegrityError:
            raise _busy(piece.name) from None    # created by a request racing this one

    def _append(self, row, files, piece, stream):
        received = files.received_bytes(row)
        if piece.offset != received:
            raise Conflict('InvalidUpload.Offset', f"{received} bytes of '{piece.name}' have arrived; "
                                                   f'send the rest from byte {received}, not {piece.offset}')
        receiver = self._receiver(row, files, received)
        finished = False
        try:
            self.replayed_bytes += receiver.catch_up()
            complete = receiver.take(stream, piece.length)
            if complete and received + piece.length == row.total_bytes:
                self._finish(row, files, receiver)
                finished = True
        except Exception:
            # A refusal, or a failure of this server: either way the upload cannot go on.
            receiver.close()
            self._discard(row.upload_id, files)
            raise
        receiver.close()
        if not finished:
            self._keep_receiver(row.upload_id, receiver)
        self._touch(row.upload_id)

    def _receiver(self, row, files, received):
        """The receiver of this upload where this process left it, or a new one that replays."""
        with self._receivers_lock:
            kept = self._receivers.pop(row.upload_id, None)
        limit, too_big = self._allowance(row), lambda size: self._too_big(row, size)
        if kept is not None and kept.consumed <= received and kept.resume(limit, too_big):
            return kept
        receiver = _Receiver(files, limit, too_big)
        receiver.resume(limit, too_big)
        return receiver

    def _keep_receiver(self, upload_id, receiver):
        with self._receivers_lock:
            self._receivers[upload_id] = receiver
            while len(self._receivers) > KEPT_RECEIVERS:
                self._receivers.popitem(last=False)

    def _finish(self, row, files, receiver):
        image = receiver.finish()
        if receiver.sha256 != row.sha256:
            raise InvalidValue(f"The data received for '{row.name}' does not have the SHA-256 declared "
                               f'({row.sha256}); send it again', code='InvalidUpload.Checksum')
        size = image.stat().st_size
        if row.image_type == 'machine':
            info = inspect_upload(image, row.declared_format, self.limits.max_virtual_size, f"'{row.name}'")
            disk_format, virtual_size = info.format, info.virtual_size
        elif size == 0:
            raise InvalidValue(f"'{row.name}' is empty", code='InvalidImage.Format')
        else:
            disk_format, virtual_size = 'raw', size
        os.replace(image, files.image)
        files.remove_partials()
        with self.db.write() as session:
            lock_account(session, row.owner)
            image_lifetimes.check_quota(session, self.limits, row.owner, size, except_upload=row.upload_id)
            stored = session.get(UploadRow, row.upload_id)
            stored.state, stored.size_bytes, stored.disk_format = 'ready', size, disk_format
            stored.virtual_size_bytes, stored.updated_at = virtual_size, utcnow()

    def _allowance(self, row):
        """The most bytes this upload's image may take: the size limit, or what the quota leaves."""
        with self.db.read() as session:
            others = used_bytes(session, row.owner, except_upload=row.upload_id)
            quota = storage_limit(session, self.limits.account_quota, row.owner)
        return min(self.limits.max_image_size, quota - others)

    def _too_big(self, row, size):
        if size > self.limits.max_image_size:
            return _too_large(row.name, self.limits.max_image_size)
        with self.db.read() as session:
            others = used_bytes(session, row.owner, except_upload=row.upload_id)
            quota = storage_limit(session, self.limits.account_quota, row.owner)
        return image_lifetimes.quota_exceeded(quota, others + size)

    def _touch(self, upload_id):
        with self.db.write() as session:
            row = session.get(UploadRow, upload_id)
            if row is not None:
                row.updated_at = utcnow()

    def _discard(self, upload_id, files):
        with self._receivers_lock:
            self._receivers.pop(upload_id, None)
        files.remove_all()
        with self.db.write() as session:
            session.execute(delete(UploadRow).where(UploadRow.upload_id == upload_id))

    def _row(self, upload_id):
        with self.db.read() as session:
            return session.get(UploadRow, upload_id)

    # -- registering ------------------------------------------------------------------------------

    def register(self, owner, name, registration):
        """RegisterImage of a finished upload: its file moves into the repository as the new image."""
        repository = self.images.repository
        moved = None
        try:
            with self.db.write() as session:
                row = session.scalar(select(UploadRow).where(UploadRow.owner == owner, UploadRow.name == name)
                                     .with_for_update())
                if row is None or row.state != 'ready':
                    raise NotFound('InvalidUpload.NotFound', f"There is no finished upload named '{name}'; "
                                                             'upload the image first, then register it')
                image_id = new_image_id(row.image_type)
                stored = StoredFile(f'{image_id}.{row.disk_format}', row.disk_format, row.size_bytes,
                                    row.virtual_size_bytes)
                self.images.add_registered(session, owner, image_id, registration, row.image_type, stored)
                session.delete(row)
                session.flush()            # any refusal of the database comes before the file moves
                files = _Files(self.directory, row.upload_id)
                repository.move_in(files.image, stored.file_name)
                moved = (stored.file_name, files.image)
        except BaseException:
            if moved:                      # the commit failed: the upload gets its file back
                os.replace(repository.path_of(moved[0]), moved[1])
            raise
        files.remove_all()
        (image,) = self.images.describe(owner, image_ids=[image_id])
        return image

    def _status(self, row):
        received = _Files(self.directory, row.upload_id).received_bytes(row)
        return UploadStatus(row.name, row.owner, row.state, row.image_type, row.total_bytes, received,
                            row.sha256, row.size_bytes, row.disk_format, row.virtual_size_bytes,
                            row.created_at, row.updated_at)


# --- Receiving bytes -----------------------------------------------------------------------------

class _Receiver:
    """Where an upload's bytes go as they arrive: appended as sent, hashed, and, for a gzip stream,
    decompressed (no more than `limit` bytes, else `too_big(size)` is raised)."""

    def __init__(self, files, limit, too_big):
        self.files = files
        self.limit = limit
        self.too_big = too_big
        self.digest = hashlib.sha256()
        self.size = 0                  # of the image: bytes as sent, or decompressed
        self._head = b''               # the first bytes, until there are enough to recognise gzip
        self._gzip = None              # unknown until then
        self._inflater = None
        self._inflater_fed = False
        self._sent = None
        self._inflated = None
        self.consumed = 0              # bytes of the received file hashed (and inflated) so far

    @property
    def sha256(self):
        return self.digest.hexdigest()

    def resume(self, limit, too_big):
        """Open the files to go on appending; False when they no longer match where this stood."""
        self.limit, self.too_big = limit, too_big
        if self._gzip and (not self.files.inflated.exists() or self.files.inflated.stat().st_size !=
                           self._inflated_size):
            return False
        self._sent = self.files.received.open('ab')
        if self._gzip:
            self._inflated = self.files.inflated.open('ab')
        return True

    def catch_up(self):
        """Hash (and inflate) what earlier requests delivered beyond what this receiver saw: all of it
        for a new receiver, nothing for one kept from the previous piece. Returns the bytes read."""
        read = 0
        with self.files.received.open('rb') as earlier:
            earlier.seek(self.consumed)
            for chunk in iter(lambda: earlier.read(CHUNK_BYTES), b''):
                self._consume(chunk)
                read += len(chunk)
        return read

    def take(self, stream, length):
        """Append `length` bytes read from `stream`; False if the stream ended before them."""
        remaining = length
        while remaining:
            chunk = stream.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                self._sent.flush()     # keep what came: the sender resumes after it
                return False
            self._sent.write(chunk)
            self._consume(chunk)
            remaining -= len(chunk)
        self._sent.flush()
        return True

    def finish(self):
        """The path of the complete image, after checking a gzip stream ended where it should."""
        if self._gzip is None:
            self._start(gzip=False)
            self._count(len(self._head))
        self._sent.close()
        if not self._gzip:
            return self.files.received
        if self._inflater_fed:
            self._inflate_rest()
        if self._inflater_fed and not self._inflater.eof:
            raise InvalidValue('The gzip stream is truncated: it ends before its last block',
                               code='InvalidImage.Format')
        self._inflated.close()
        return self.files.inflated

    def close(self):
        for stream in (self._sent, self._inflated):
            if stream is not None:
                stream.close()
        self._sent = self._inflated = None

    def _consume(self, chunk):
        self.consumed += len(chunk)
        self.digest.update(chunk)
        if self._gzip is None:
            self._head += chunk
            if len(self._head) < len(GZIP_MAGIC):
                return
            chunk, self._head = self._head, b''
            self._start(gzip=chunk.startswith(GZIP_MAGIC))
        if self._gzip:
            self._inflate(chunk)
        else:
            self._count(len(chunk))

    def _start(self, gzip):
        self._gzip = gzip
        if gzip:
            self._inflater = zlib.decompressobj(_GZIP_WINDOW)
            self._inflated = self.files.inflated.open('wb')     # rewritten from the start by replay
            self._inflated_size = 0

    def _inflate(self, data):
        try:
            while data:
                self._inflater_fed = True
                self._emit(self._inflater.decompress(data, CHUNK_BYTES))
                if self._inflater.eof:
                    # gzip files may hold several members one after the other (`cat a.gz b.gz`).
                    data = self._inflater.unused_data
                    self._inflater, self._inflater_fed = zlib.decompressobj(_GZIP_WINDOW), False
                else:
                    data = self._inflater.unconsumed_tail
        except zlib.error as error:
            raise InvalidValue(f'The gzip stream is corrupt ({error})', code='InvalidImage.Format') from None

    def _inflate_rest(self):
        try:
            self._emit(self._inflater.flush())
        except zlib.error as error:
            raise InvalidValue(f'The gzip stream is corrupt ({error})', code='InvalidImage.Format') from None

    def _emit(self, output):
        self._count(len(output))
        self._inflated.write(output)
        self._inflated_size += len(output)

    def _count(self, length):
        self.size += length
        if self.size > self.limit:
            raise self.too_big(self.size)


class _Files:
    def __init__(self, directory, upload_id):
        self.directory = directory
        self.received = directory / f'{upload_id}.received'
        self.inflated = directory / f'{upload_id}.inflated'
        self.image = directory / f'{upload_id}.image'
        self.lock = directory / f'{upload_id}.lock'

    def received_bytes(self, row):
        if row.state == 'ready':
            return row.total_bytes
        try:
            return self.received.stat().st_size
        except FileNotFoundError:
            return 0

    def remove_partials(self):
        for path in (self.received, self.inflated):
            path.unlink(missing_ok=True)

    def remove_all(self):
        for path in (self.received, self.inflated, self.image, self.lock):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(lock_path, name):
    """Hold the upload's lock file: one writer at a time, released even if the process dies."""
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(lock_path, 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(name) from None
        yield


# --- Checks and refusals -------------------------------------------------------------------------

def _check_piece(piece, limits):
    if not isinstance(piece.name, str) or not UPLOAD_NAME.fullmatch(piece.name):
        raise InvalidValue(f"Invalid upload name {piece.name!r}: use 3 to 128 letters, digits, spaces or ()[].-'@_",
                           code='InvalidParameterValue')
    if piece.image_type not in ID_PREFIXES:
        raise InvalidValue(f'Invalid image type {piece.image_type!r}; use machine, kernel or ramdisk')
    if piece.disk_format is not None and (piece.disk_format not in UPLOAD_FORMATS or
                                          (piece.image_type != 'machine' and piece.disk_format != 'raw')):
        raise InvalidValue(f'Invalid disk format {piece.disk_format!r}; machine images are qcow2 or raw, '
                           'kernels and ramdisks raw', code='InvalidImage.Format')
    if not SHA256_HEX.fullmatch(piece.sha256 or ''):
        raise InvalidValue('The SHA-256 of the upload must be 64 lowercase hex digits',
                           code='InvalidUpload.Checksum')
    if piece.total_bytes <= 0:
        raise InvalidValue('An upload cannot be empty', code='InvalidImage.Format')
    if piece.total_bytes > limits.max_image_size:
        raise _too_large(piece.name, limits.max_image_size)
    if piece.offset < 0 or piece.length < 0 or piece.offset + piece.length > piece.total_bytes:
        raise InvalidValue(f'Bytes {piece.offset} to {piece.offset + piece.length} are outside an upload of '
                           f'{piece.total_bytes} bytes', code='InvalidUpload.Range')


def _check_same_object(row, piece):
    if (row.total_bytes, row.sha256, row.image_type, row.declared_format) != (
            piece.total_bytes, piece.sha256, piece.image_type, piece.disk_format):
        raise Conflict('InvalidUpload.Mismatch', f"An upload named '{piece.name}' with other content is on the "
                                                 'server; delete it first, or choose another name')


def _find(session, owner, name):
    return session.scalar(select(UploadRow).where(UploadRow.owner == owner, UploadRow.name == name))


def _no_upload(name):
    return NotFound('InvalidUpload.NotFound', f"There is no upload named '{name}'")


def _busy(name):
    return Conflict('InvalidUpload.InProgress', f"Another request is writing the upload '{name}'; "
                                                'try again once it has finished')


def _too_large(name, limit):
    return BackendError('InvalidImage.TooLarge', f"'{name}' is larger than the {limit}-byte limit of one image")
