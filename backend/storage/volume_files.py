"""The files of volumes and snapshots, as layers of qcow2.

A volume is one qcow2 under <state dir>/volumes, sparse, so a new volume takes a few hundred KiB
whatever its size and grows as the guest writes. A snapshot is an immutable qcow2 under
<state dir>/snapshots; a volume made from a snapshot is an empty overlay of its file (O(1)).

A snapshot of a volume no running guest holds is O(1) too (`freeze`): the volume's file becomes the
snapshot's, under a second name, and the volume carries on in a new empty overlay of it. A
snapshot thereby holds only what was written since the volume's previous snapshot.
"""
import os
import subprocess
from pathlib import Path

GIB = 1024 ** 3
COMMAND_TIMEOUT_SECONDS = 120


class VolumeFileError(Exception):
    """qemu-img could not make, grow or read a volume's or a snapshot's file."""


class VolumeFiles:
    def __init__(self, root, snapshots_root=None):
        self.root = Path(root)
        self.snapshots_root = Path(snapshots_root) if snapshots_root else self.root.parent / 'snapshots'

    def path(self, volume_id):
        return self.root / f'{volume_id}.qcow2'

    def snapshot_path(self, snapshot_id):
        return self.snapshots_root / f'{snapshot_id}.qcow2'

    def create(self, volume_id, size_gib, backing_snapshot=None):
        """An empty volume of `size_gib`, or an overlay of a snapshot's file; made beside its final
        name and renamed, so a crash leaves no half-made file under the volume's name."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(volume_id)
        partial = final.with_suffix('.partial')
        _qemu_img('create', '-q', '-f', 'qcow2', *self._backing(backing_snapshot), str(partial), str(size_gib * GIB))
        partial.rename(final)
        return final

    def grow(self, volume_id, size_gib):
        _qemu_img('resize', '-q', '-f', 'qcow2', str(self.path(volume_id)), str(size_gib * GIB))

    def exists(self, volume_id):
        return self.path(volume_id).exists()

    def remove(self, volume_id):
        for path in (self.path(volume_id), self.path(volume_id).with_suffix('.partial'),
                     *self.root.glob(f'{volume_id}.snap-*')):
            path.unlink(missing_ok=True)

    # -- snapshots -----------------------------------------------------------------------------------

    def prepare_freeze(self, volume_id, snapshot_id, size_gib):
        """The empty overlay a volume will go on in after `freeze`: made ahead, outside any lock, since
        it is the slow part (a qemu-img run). Named by snapshot and size, so it is never taken for a
        volume grown since."""
        following = self._following(volume_id, snapshot_id, size_gib)
        if not following.exists():
            partial = following.with_suffix('.partial')
            # -u: the backing name is written as is; the file behind it is linked by `freeze`.
            _qemu_img('create', '-q', '-f', 'qcow2', '-u', *self._backing(snapshot_id), str(partial),
                      str(size_gib * GIB))
            partial.rename(following)
        return following

    def freeze(self, volume_id, snapshot_id, size_gib):
        """Make the volume's present content the snapshot's file, in O(1); the volume goes on in a
        new overlay of it. Only for a volume no running guest holds. Repeatable after a crash at
        any step: the snapshot's name is linked before the volume's is replaced."""
        self.snapshots_root.mkdir(parents=True, exist_ok=True)
        volume, frozen = self.path(volume_id), self.snapshot_path(snapshot_id)
        try:
            if not frozen.exists():
                following = self.prepare_freeze(volume_id, snapshot_id, size_gib)
                os.link(volume, frozen)
            else:
                following = self._following(volume_id, snapshot_id, size_gib)
            if following.exists():
                os.replace(following, volume)
            for stale in self.root.glob(f'{volume_id}.{snapshot_id}.*'):
                stale.unlink(missing_ok=True)      # made for a size the volume no longer has
        except OSError as error:
            raise VolumeFileError(f'cannot freeze {volume_id}: {error}') from None

    def _following(self, volume_id, snapshot_id, size_gib):
        return self.root / f'{volume_id}.{snapshot_id}.{size_gib}g.next'

    def overlay_snapshot(self, snapshot_id, source_snapshot_id):
        """A snapshot with the content of another, as an empty overlay of its file (CopySnapshot)."""
        self.snapshots_root.mkdir(parents=True, exist_ok=True)
        final = self.snapshot_path(snapshot_id)
        if final.exists():
            return
        partial = final.with_suffix('.partial')
        _qemu_img('create', '-q', '-f', 'qcow2', *self._backing(source_snapshot_id), str(partial))
        partial.rename(final)

    def import_snapshot(self, snapshot_id, source, source_format):
        """A standalone snapshot file with the content of a disk image (an image's root, made EBS)."""
        self.snapshots_root.mkdir(parents=True, exist_ok=True)
        final = self.snapshot_path(snapshot_id)
        partial = final.with_suffix('.partial')
        _qemu_img('convert', '-q', '-f', source_format or 'raw', '-O', 'qcow2', str(source), str(partial))
        partial.rename(final)

    def snapshot_exists(self, snapshot_id):
        return self.snapshot_path(snapshot_id).exists()

    def remove_snapshot(self, snapshot_id):
        for path in (self.snapshot_path(snapshot_id), self.snapshot_path(snapshot_id).with_suffix('.partial')):
            path.unlink(missing_ok=True)

    def bytes_of(self, path):
        """Bytes a file takes on disk (its allocated blocks)."""
        return os.stat(path).st_blocks * 512

    def _backing(self, snapshot_id):
        return ('-b', str(self.snapshot_path(snapshot_id).absolute()), '-F', 'qcow2') if snapshot_id else ()


def _qemu_img(*arguments):
    try:
        subprocess.run(['qemu-img', *arguments], capture_output=True, text=True, check=True,
                       timeout=COMMAND_TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as error:
        raise VolumeFileError(f'qemu-img {arguments[0]}: {error.stderr.strip()}') from None
    except (OSError, subprocess.TimeoutExpired) as error:
        raise VolumeFileError(f'qemu-img {arguments[0]}: {error}') from None
