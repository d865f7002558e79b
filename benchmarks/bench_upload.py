"""Image upload throughput: `reservoir image upload` of a 1 GiB image to a local server, against a
plain local copy of the same file.

    python3 benchmarks/bench_upload.py [--size-mib 1024] [--json]

The image is a qcow2 with SIZE MiB of random (incompressible) data. Measured, with a warm page cache:
- a plain copy (`cp`) of the file on the same file system, the floor for "bytes into the repository";
- the whole command (client SHA-256, signed streaming PUT, server SHA-256 and write, `qemu-img
  check`, RegisterImage), and the transfer alone as the command reports it;
- the same image gzip-compressed (a compressible one: half zeros), decompressed by the server as
  it arrives;
- the server's peak resident memory during each upload, which stays flat whatever the size.

One run on a 2-vCPU virtual machine (client and server on the same machine, 1024 MiB):
cp 1.05 s (973 MiB/s); the whole command 8.3 s (123 MiB/s), of which the transfer 5.9 s
(174 MiB/s); gzip (515 MiB sent) 5.6 s, transfer 4.1 s (247 MiB/s of image); server memory 101 MiB
idle, 103 MiB at the peak of the upload, 106 MiB for the gzip one.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from servers import REPOSITORY, Reservoir, reservoir_command

MIB = 1 << 20


def make_image(directory, size_mib, compressible):
    """A qcow2 image whose SIZE MiB are all allocated; random, or half random and half zeros."""
    raw = directory / 'source.raw'
    with open(raw, 'wb') as out:
        for index in range(size_mib):
            zero = compressible and index % 2
            out.write(bytes(MIB) if zero else os.urandom(MIB))
    image = directory / ('compressible.qcow2' if compressible else 'random.qcow2')
    # -S 0: zeros are written out too, so the image has the size asked for.
    subprocess.run(['qemu-img', 'convert', '-q', '-S', '0', '-O', 'qcow2', str(raw), str(image)], check=True)
    raw.unlink()
    return image


def plain_copy(image, directory):
    target = directory / 'copy.qcow2'
    started = time.monotonic()
    subprocess.run(['cp', '--', str(image), str(target)], check=True)
    os.sync()
    seconds = time.monotonic() - started
    target.unlink()
    return seconds


class PeakMemory:
    """The largest resident set of the server's processes while it runs (sampled from /proc)."""

    def __init__(self, root_pid):
        self.root_pid = root_pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak_kib = max(self.peak_kib, resident_kib(self.root_pid))


def resident_kib(root_pid):
    """The largest resident set among a process and its children (the server's worker processes)."""
    return max(_rss_kib(pid) for pid in [root_pid, *_children(root_pid)])


def _children(pid):
    try:
        return [int(child) for child in Path(f'/proc/{pid}/task/{pid}/children').read_text().split()]
    except OSError:
        return []


def _rss_kib(pid):
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def upload(server, path, name):
    """Run the command as a user would; (seconds for the whole command, its JSON report, peak KiB)."""
    env = dict(server.env, AWS_ACCESS_KEY_ID=server.credentials[0], AWS_SECRET_ACCESS_KEY=server.credentials[1])
    command = reservoir_command('image', 'upload', str(path), '--name', name, '--endpoint', server.endpoint,
                                '--no-progress', '--json')
    with PeakMemory(server.process.pid) as memory:
        started = time.monotonic()
        result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPOSITORY)
        seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f'upload failed: {result.stderr}')
    return seconds, json.loads(result.stdout), memory.peak_kib


def measure(size_mib, work):
    results = {'size_mib': size_mib}
    image = make_image(work, size_mib, compressible=False)
    results['file_mib'] = image.stat().st_size / MIB
    subprocess.run(['cat', str(image)], stdout=subprocess.DEVNULL, check=True)     # warm the page cache
    results['copy_seconds'] = plain_copy(image, work)

    server = Reservoir(extra_env={'RESERVOIR_IMAGES_MAX_IMAGE_SIZE': f'{4 * size_mib}M',
                                  'RESERVOIR_IMAGES_ACCOUNT_QUOTA': f'{8 * size_mib}M'})
    server.start()
    try:
        results['idle_server_kib'] = resident_kib(server.process.pid)
        seconds, report, peak = upload(server, image, 'random')
        results.update(upload_seconds=seconds, transfer_seconds=report['seconds'], upload_peak_kib=peak)
        image.unlink()

        compressible = make_image(work, size_mib, compressible=True)
        packed = work / 'compressible.qcow2.gz'
        with open(compressible, 'rb') as source, gzip.open(packed, 'wb', compresslevel=1) as target:
            shutil.copyfileobj(source, target, MIB)
        results['gzip_mib'] = packed.stat().st_size / MIB
        results['gzip_image_mib'] = compressible.stat().st_size / MIB
        compressible.unlink()
        seconds, report, peak = upload(server, packed, 'compressed')
        results.update(gzip_upload_seconds=seconds, gzip_transfer_seconds=report['seconds'], gzip_peak_kib=peak)
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
    return results


def report(results):
    size = results['file_mib']
    rows = [
        ('plain local copy (cp)', results['copy_seconds'], size),
        ('reservoir image upload, whole command', results['upload_seconds'], size),
        ('  of which the transfer (PUT)', results['transfer_seconds'], size),
        ('gzip upload, whole command (image MiB/s)', results['gzip_upload_seconds'], results['gzip_image_mib']),
        ('  of which the transfer (image MiB/s)', results['gzip_transfer_seconds'], results['gzip_image_mib']),
    ]
    print(f"image: {size:.0f} MiB qcow2 of random data; gzip case: {results['gzip_mib']:.0f} MiB sent for a "
          f"{results['gzip_image_mib']:.0f} MiB image")
    print(f"{'':44} {'seconds':>8} {'MiB/s':>8}")
    for label, seconds, mib in rows:
        print(f'{label:44} {seconds:8.2f} {mib / seconds:8.0f}')
    print(f"upload vs copy: {results['upload_seconds'] / results['copy_seconds']:.1f}x the time")
    print(f"server resident memory: idle {results['idle_server_kib'] / 1024:.0f} MiB, peak during upload "
          f"{results['upload_peak_kib'] / 1024:.0f} MiB, during gzip upload {results['gzip_peak_kib'] / 1024:.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--json', action='store_true', help='print the measurements as JSON')
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='reservoir-bench-upload-'))
    try:
        results = measure(args.size_mib, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
