"""The files of volumes: one qcow2 per volume under <state dir>/volumes, sparse, so a new volume takes
a few hundred KiB whatever its size, and grows as the guest writes."""
import subprocess
from pathlib import Path

GIB = 1024 ** 3
COMMAND_TIMEOUT_SECONDS = 120


class VolumeFileError(Exception):
    """qemu-img could not make, grow or read a volume's file."""


class VolumeFiles:
    def __init__(self, root):
        self.root = Path(root)

    def path(self, volume_id):
        return self.root / f'{volume_id}.qcow2'

    def create(self, volume_id, size_gib):
        """An empty volume of `size_gib`; made beside its final name and renamed, so a crash leaves no
        half-made file under the volume's name."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(volume_id)
        partial = final.with_suffix('.partial')
        _qemu_img('create', '-q', '-f', 'qcow2', str(partial), str(size_gib * GIB))
        partial.rename(final)
        return final

    def grow(self, volume_id, size_gib):
        _qemu_img('resize', '-q', '-f', 'qcow2', str(self.path(volume_id)), str(size_gib * GIB))

    def exists(self, volume_id):
        return self.path(volume_id).exists()

    def remove(self, volume_id):
        for path in (self.path(volume_id), self.path(volume_id).with_suffix('.partial')):
            path.unlink(missing_ok=True)


def _qemu_img(*arguments):
    try:
        subprocess.run(['qemu-img', *arguments], capture_output=True, text=True, check=True,
                       timeout=COMMAND_TIMEOUT_SECONDS)
    except subprocess.CalledProcessError as error:
        raise VolumeFileError(f'qemu-img {arguments[0]}: {error.stderr.strip()}') from None
    except (OSError, subprocess.TimeoutExpired) as error:
        raise VolumeFileError(f'qemu-img {arguments[0]}: {error}') from None
