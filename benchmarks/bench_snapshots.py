"""EBS snapshots: what CreateSnapshot and CreateVolume from a snapshot cost, and DescribeSnapshots per item.

    python3 benchmarks/bench_snapshots.py [--size 10] [--data 1024] [--more 64] [--snapshots 10000]

One account makes a volume of SIZE GiB and writes DATA MiB into its file with qemu-io, then takes a
snapshot (API call to `completed`), makes a volume from it (API call to `available`), writes MORE MiB
and takes a second snapshot. Each is timed and the bytes it wrote are measured (allocated blocks of
the state directory's volumes and snapshots, before and after), against `qemu-img convert` of the
volume to a new qcow2, a full copy. Then N snapshots of small volumes are listed with raw signed,
paginated DescribeSnapshots requests at 1,000 and at N; the cost per listed item should stay flat.
The N snapshots go through the API and the workers like any other, so they take most of the run
(about five minutes for 10,000); the data read back from the files is checked along the way.
"""
import argparse
import concurrent.futures
import shutil
import subprocess
import time

from bench_instances import client, progress
from loadgen import raw_listing
from servers import Reservoir

MIB = 1024 ** 2
SMALL_VOLUMES = 100      # the many snapshots are spread over these (1 GiB each), chains of N/100


def allocated(*directories):
    """Bytes the files under `directories` take on disk."""
    return sum(path.stat().st_blocks * 512 for directory in directories if directory.exists()
               for path in directory.iterdir() if path.is_file())


def write_data(path, offset_mib, length_mib, pattern):
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', f'write -P {pattern} {offset_mib}M {length_mib}M', str(path)],
                   check=True, capture_output=True)


def check_data(path, *extents):
    """Fail unless `path` (read through its backing chain) holds each (offset MiB, length MiB, pattern)."""
    for offset_mib, length_mib, pattern in extents:
        result = subprocess.run(['qemu-io', '-r', '-f', 'qcow2', '-c',
                                 f'read -P {pattern} {offset_mib}M {length_mib}M', str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0 or 'fail' in result.stdout.lower() or 'fail' in result.stderr.lower():
            raise RuntimeError(f'{path.name} does not hold {pattern} at {offset_mib}M+{length_mib}M: '
                               f'{(result.stdout + result.stderr).strip()[-300:]}')


def full_copy(source, target):
    """(seconds, bytes on disk) of a qcow2 copy of `source` and everything below it."""
    started = time.perf_counter()
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', str(source), str(target)], check=True)
    seconds = time.perf_counter() - started
    on_disk = target.stat().st_blocks * 512
    target.unlink()
    return seconds, on_disk


def wait_for(describe, wanted, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = describe()
        if state == wanted:
            return
        if state in ('error', 'failed'):
            raise RuntimeError(f'{state} instead of {wanted}')
        time.sleep(0.005)
    raise RuntimeError(f'still not {wanted} after {timeout} s')


def snapshot_state(ec2, snapshot_id):
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])['Snapshots'][0]['State']


def volume_state(ec2, volume_id):
    return ec2.describe_volumes(VolumeIds=[volume_id])['Volumes'][0]['State']


def timed_snapshot(ec2, server, volume_id):
    """(snapshot id, seconds from CreateSnapshot to completed, bytes written meanwhile)."""
    before = allocated(server.home / 'volumes', server.home / 'snapshots')
    started = time.perf_counter()
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)['SnapshotId']
    wait_for(lambda: snapshot_state(ec2, snapshot_id), 'completed')
    seconds = time.perf_counter() - started
    return snapshot_id, seconds, allocated(server.home / 'volumes', server.home / 'snapshots') - before


def many_snapshots(ec2, volumes, count):
    """`count` snapshots spread over `volumes` from 4 clients; returns once all are completed."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        pending = [reply['SnapshotId'] for reply in pool.map(
            lambda index: ec2.create_snapshot(VolumeId=volumes[index % len(volumes)]), range(count))]
    deadline = time.monotonic() + 1800
    while pending:      # by id, 200 at a time: a filtered listing would read every snapshot each round
        states = {item['SnapshotId']: item['State'] for item in
                  ec2.describe_snapshots(SnapshotIds=pending[:200])['Snapshots']}
        if any(state not in ('pending', 'completed') for state in states.values()):
            raise RuntimeError(f'snapshots failed: {sorted(set(states.values()))}')
        done = {snapshot_id for snapshot_id, state in states.items() if state == 'completed'}
        pending = [snapshot_id for snapshot_id in pending if snapshot_id not in done]
        if pending and not done:
            if time.monotonic() > deadline:
                raise RuntimeError(f'{len(pending)} snapshots still pending after 30 minutes')
            time.sleep(0.2)


def best_listing(server, rounds=3):
    return min((raw_listing(server, 'DescribeSnapshots', 'snapshotId') for _ in range(rounds)), key=lambda r: r[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=10, help='GiB of the large volume')
    parser.add_argument('--data', type=int, default=1024, help='MiB written into it before the first snapshot')
    parser.add_argument('--more', type=int, default=64, help='MiB written before the second snapshot')
    parser.add_argument('--snapshots', type=int, default=10000, help='snapshots listed at the end')
    args = parser.parse_args()
    if args.snapshots < 1000:
        parser.error('--snapshots is at least 1000')
    server = Reservoir(processes=2).start()
    results = {}
    try:
        server.admin('user', 'set-quota', 'bench', '--storage', f'{3 * args.size + SMALL_VOLUMES + 100}G')
        ec2 = client(server)
        zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
        volume_id = ec2.create_volume(AvailabilityZone=zone, Size=args.size)['VolumeId']
        wait_for(lambda: volume_state(ec2, volume_id), 'available')
        volume_file = server.home / 'volumes' / f'{volume_id}.qcow2'
        progress(f'writing {args.data} MiB into {volume_id}')
        write_data(volume_file, 0, args.data, '0xab')
        results['copy'] = full_copy(volume_file, server.home / 'copy.qcow2')

        progress('first snapshot')
        snapshot_id, *results['snapshot'] = timed_snapshot(ec2, server, volume_id)
        snapshot_file = server.home / 'snapshots' / f'{snapshot_id}.qcow2'
        results['snapshot_file'] = snapshot_file.stat().st_blocks * 512

        progress('volume from it')
        before = allocated(server.home / 'volumes', server.home / 'snapshots')
        started = time.perf_counter()
        restored_id = ec2.create_volume(AvailabilityZone=zone, SnapshotId=snapshot_id)['VolumeId']
        wait_for(lambda: volume_state(ec2, restored_id), 'available')
        results['restore'] = (time.perf_counter() - started,
                              allocated(server.home / 'volumes', server.home / 'snapshots') - before)
        check_data(server.home / 'volumes' / f'{restored_id}.qcow2', (0, args.data, '0xab'))
        results['restore_copy'] = full_copy(server.home / 'volumes' / f'{restored_id}.qcow2',
                                            server.home / 'copy.qcow2')

        progress(f'writing {args.more} MiB more; second snapshot')
        write_data(volume_file, args.data, args.more, '0xcd')
        second_id, *results['second'] = timed_snapshot(ec2, server, volume_id)
        results['second_file'] = (server.home / 'snapshots' / f'{second_id}.qcow2').stat().st_blocks * 512
        results['second_copy'] = full_copy(volume_file, server.home / 'copy.qcow2')
        check_data(volume_file, (0, args.data, '0xab'), (args.data, args.more, '0xcd'))
        check_data(snapshot_file, (0, args.data, '0xab'), (args.data, args.more, '0x00'))
        check_data(server.home / 'snapshots' / f'{second_id}.qcow2', (args.data, args.more, '0xcd'))

        progress(f'{args.snapshots} snapshots of {SMALL_VOLUMES} small volumes')
        small = [ec2.create_volume(AvailabilityZone=zone, Size=1)['VolumeId'] for _ in range(SMALL_VOLUMES)]
        for small_id in small:
            wait_for(lambda: volume_state(ec2, small_id), 'available')
        first = 1000 - 2        # the two above count too
        started = time.perf_counter()
        many_snapshots(ec2, small, first)
        results['many_rate'] = first / (time.perf_counter() - started)
        results['at_1000'] = best_listing(server)
        if args.snapshots > 1000:
            progress(f'{args.snapshots - 1000} more')
            started = time.perf_counter()
            many_snapshots(ec2, small, args.snapshots - 1000)
            results['more_rate'] = (args.snapshots - 1000) / (time.perf_counter() - started)
            results['at_all'] = best_listing(server)
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)
    report(args, results)


def report(args, results):
    def size(count):
        return f'{count / MIB:,.1f} MiB' if count >= MIB else f'{count / 1024:,.0f} KiB'
    rows = [
        (f'full copy of the volume ({args.data} MiB written)', *results['copy']),
        (f'CreateSnapshot to completed (file: {size(results["snapshot_file"])})', *results['snapshot']),
        ('CreateVolume from it to available', *results['restore']),
        ('full copy of that volume', *results['restore_copy']),
        (f'second CreateSnapshot, {args.more} MiB later (file: {size(results["second_file"])})', *results['second']),
        ('full copy of the volume then', *results['second_copy']),
    ]
    print()
    print(f'{f"{args.size} GiB volume, {args.data} MiB of data":<74} {"seconds":>8}  {"written":>11}')
    for name, seconds, written in rows:
        print(f'  {name:<72} {seconds:8.3f}  {size(written):>11}')
    rest = f', {results["more_rate"]:.0f}/s for the rest' if 'more_rate' in results else ''
    print(f'CreateSnapshot of small volumes from 4 clients, to completed: {results["many_rate"]:.0f} snapshots/s '
          f'for the first 1,000{rest}')
    for count, seconds in [results['at_1000']] + ([results['at_all']] if 'at_all' in results else []):
        print(f'DescribeSnapshots: {count} snapshots in {seconds:.2f} s, '
              f'{seconds / max(count, 1) * 1e6:.0f} µs per item')


if __name__ == '__main__':
    main()
