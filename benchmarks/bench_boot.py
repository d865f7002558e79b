"""Seconds from RunInstances to a contextualized guest, real VMs on the embedded QEMU host.

    sudo python3 benchmarks/bench_boot.py [--counts 1,4,8] [--rounds 1] [--instance-type t1.micro]

Sets up the same sealed cloud as the VM tests (a network namespace of its own, `reservoir serve`
inside it, `host add-local`, the stock image), then for each count launches that many instances in
one RunInstances call and polls GetConsoleOutput until each shows `reservoir-context:
contextualized`. The time per instance runs from just before the call to the poll that first saw
the marker (polls every 0.25 s per instance). Instances are terminated between rounds. A first
boot warms the host up (libvirt probes QEMU's capabilities on its first connection); it is shown
apart and left out of the table.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.vm.conftest import CONTEXTUALIZED, NetnsCloud, missing_requirement, wait_for_states  # noqa: E402

POLL_SECONDS = 0.25
BOOT_TIMEOUT = 600


def boot_times(ec2, image_id, count, instance_type):
    started = time.monotonic()
    instances = ec2.run_instances(ImageId=image_id, MinCount=count, MaxCount=count,
                                  InstanceType=instance_type)['Instances']
    accepted = time.monotonic() - started
    waiting = {instance['InstanceId'] for instance in instances}
    ready = {}
    while waiting and time.monotonic() - started < BOOT_TIMEOUT:
        for instance_id in sorted(waiting):
            output = ec2.get_console_output(InstanceId=instance_id).get('Output') or ''
            if CONTEXTUALIZED in output:
                ready[instance_id] = time.monotonic() - started
        waiting -= set(ready)
        time.sleep(POLL_SECONDS)
    ids = [instance['InstanceId'] for instance in instances]
    ec2.terminate_instances(InstanceIds=ids)
    wait_for_states(ec2, ids, {'terminated'}, timeout=300)
    if waiting:
        raise SystemExit(f'{len(waiting)} of {count} instances did not contextualize in {BOOT_TIMEOUT} s')
    return accepted, sorted(ready.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--counts', default='1,4,8', help='instances launched at once, comma-separated')
    parser.add_argument('--rounds', type=int, default=1, help='repetitions of each count')
    parser.add_argument('--instance-type', default='t1.micro')
    args = parser.parse_args()
    reason = missing_requirement()
    if reason:
        raise SystemExit(f'cannot run real VMs here: {reason}')
    counts = [int(count) for count in args.counts.split(',')]

    cloud = NetnsCloud()
    ec2 = None
    try:
        set_up = time.monotonic()
        cloud.start()
        ec2 = cloud.client()
        print(f'cloud set up in {time.monotonic() - set_up:.1f} s; host: {cloud.host.strip().splitlines()[0]}')
        accepted, (warm_up,) = boot_times(ec2, cloud.image_id, 1, args.instance_type)
        print(f'  first boot after the server started (warm-up): {warm_up:.1f} s', flush=True)
        rows = []
        for count in counts:
            for _ in range(args.rounds):
                accepted, times = boot_times(ec2, cloud.image_id, count, args.instance_type)
                rows.append((count, accepted, times))
                print(f'  {count} at once: {", ".join(f"{t:.1f}" for t in times)} s', flush=True)
    finally:
        cloud.close(ec2)

    print(f'\nRunInstances -> "{CONTEXTUALIZED}" (seconds, {args.instance_type}, TCG unless the host says kvm)')
    print(f'{"at once":>8} {"API":>6} {"first":>7} {"median":>7} {"last":>7}')
    for count, accepted, times in rows:
        print(f'{count:>8} {accepted:>6.2f} {times[0]:>7.1f} {statistics.median(times):>7.1f} {times[-1]:>7.1f}')


if __name__ == '__main__':
    main()
