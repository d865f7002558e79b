"""Instance disk preparation: a copy-on-write overlay against full copies, for 1 GiB and 10 GiB images.

    python3 benchmarks/bench_clone.py [--sizes 1,10] [--repeat 3] [--dir /var/tmp]

Each master image is a qcow2 whose every byte is written (a pattern), so a full copy really has to
move the data. Measured, the median of --repeat runs:
- overlay: `qemu-img create -f qcow2 -F qcow2 -b master`, what each instance launch does;
- copy: `cp --sparse=always --reflink=auto` then fsync, what registering a qcow2 image does (on
  filesystems without reflink, a full copy);
- flatten: `qemu-img convert -O qcow2` of an overlay on the master, what CreateImage does.
The master is in the page cache (it was just written), so copies read from memory: a lower bound.
"""
import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

GIB = 1 << 30
PATTERN = '0x5a'


def run(*command):
    subprocess.run(command, check=True, capture_output=True)


def timed(*commands):
    started = time.monotonic()
    for command in commands:
        run(*command)
    return time.monotonic() - started


def make_master(path, size_gib):
    run('qemu-img', 'create', '-q', '-f', 'qcow2', str(path), f'{size_gib}G')
    writes = [argument for gib in range(size_gib) for argument in ('-c', f'write -P {PATTERN} {gib}G 1G')]
    run('qemu-io', *writes, str(path))     # 1 GiB per request: qemu-io caps one request's size
    run('sync', str(path))


def measure(directory, size_gib, repeat):
    master = directory / f'master-{size_gib}g.qcow2'
    make_master(master, size_gib)
    overlay, copy, flat = directory / 'overlay.qcow2', directory / 'copy.qcow2', directory / 'flat.qcow2'
    results = {'overlay': [], 'copy': [], 'flatten': []}
    for _ in range(repeat):
        results['overlay'].append(timed(
            ('qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', str(master), str(overlay))))
        results['copy'].append(timed(('cp', '--sparse=always', '--reflink=auto', str(master), str(copy)),
                                     ('sync', str(copy))))
        copy.unlink()
        results['flatten'].append(timed(('qemu-img', 'convert', '-O', 'qcow2', str(overlay), str(flat)),
                                        ('sync', str(flat))))
        flat.unlink()
        overlay.unlink()
    master.unlink()
    return {name: statistics.median(values) for name, values in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='1,10', help='master sizes in GiB, comma-separated')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--dir', default='/var/tmp', help='where the images are written (needs 2x the largest size)')
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(',')]
    if shutil.disk_usage(args.dir).free < 2.2 * max(sizes) * GIB:
        raise SystemExit(f'{args.dir} has too little free space for {max(sizes)} GiB images')
    directory = Path(tempfile.mkdtemp(prefix='reservoir-bench-clone-', dir=args.dir))
    try:
        rows = [(size, measure(directory, size, args.repeat)) for size in sizes]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f'Preparing an instance disk from a fully written qcow2 master (median of {args.repeat}, seconds)')
    print(f'{"image":>7} {"overlay":>9} {"full copy":>10} {"flatten":>9} {"copy/overlay":>13}')
    for size, result in rows:
        ratio = result['copy'] / result['overlay']
        print(f'{size:>4}GiB {result["overlay"]:>9.3f} {result["copy"]:>10.2f} {result["flatten"]:>9.2f} {ratio:>12.0f}x')


if __name__ == '__main__':
    main()
