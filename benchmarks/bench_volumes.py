"""Volumes at scale: CreateVolume's rate and cost on disk, and DescribeVolumes per item as they grow.

    python3 benchmarks/bench_volumes.py [--volumes 10000] [--size 10]

One account creates N volumes of SIZE GiB (sparse qcow2 files: the bytes written per volume are
reported against a full copy of SIZE GiB), then lists them with raw signed, paginated
DescribeVolumes requests at 1,000 and at N volumes; the cost per listed item should stay flat.
"""
import argparse
import concurrent.futures
import time

from bench_instances import client, progress
from loadgen import raw_listing
from servers import Reservoir


def create(ec2, zone, size, count):
    ids = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for reply in pool.map(lambda _: ec2.create_volume(AvailabilityZone=zone, Size=size), range(count)):
            ids.append(reply['VolumeId'])
    return ids


def best_listing(server, rounds=3):
    return min((raw_listing(server, 'DescribeVolumes', 'volumeId') for _ in range(rounds)), key=lambda r: r[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--volumes', type=int, default=10000)
    parser.add_argument('--size', type=int, default=10, help='GiB per volume')
    args = parser.parse_args()
    server = Reservoir(processes=2).start()
    try:
        server.admin('user', 'set-quota', 'bench', '--storage', f'{args.volumes * args.size + 100}G')
        ec2 = client(server)
        zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
        progress('first 1,000 volumes')
        started = time.perf_counter()
        create(ec2, zone, args.size, 1000)
        first_seconds = time.perf_counter() - started
        files = list((server.home / 'volumes').glob('*.qcow2'))
        on_disk = sum(path.stat().st_blocks * 512 for path in files) / len(files)
        at_1000 = best_listing(server)
        progress(f'{args.volumes - 1000} more')
        create(ec2, zone, args.size, args.volumes - 1000)
        at_all = best_listing(server)
    finally:
        server.stop()
    print()
    print(f'CreateVolume of {args.size} GiB, 4 clients: {1000 / first_seconds:.0f} volumes/s; '
          f'{on_disk / 1024:.0f} KiB on disk each, against {args.size} GiB for a full copy')
    for count, seconds in (at_1000, at_all):
        print(f'DescribeVolumes: {count} volumes in {seconds:.2f} s, {seconds / max(count, 1) * 1e6:.0f} µs per item')


if __name__ == '__main__':
    main()
