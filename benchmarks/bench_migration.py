"""Moving a running stock VM between two libvirt daemons of this machine: time and downtime.

    sudo python3 benchmarks/bench_migration.py [--rounds 3]

Starts a Reservoir in a network namespace of its own (as the real-VM tests do) with two `libvirtd`
daemons of their own as its hosts, boots the stock image there, and then moves it back and forth,
ROUNDS times live and ROUNDS times cold, each through `reservoir instance migrate`. While it moves, its
VPC's router pings it every 20 ms: the pings lost times 20 ms is the downtime the guest's neighbours
see. Reports, per kind of move, the command's time (request to `running` on the other host) and the
downtime, as the best and worst round.
"""
import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.vm.conftest import cloud_on_two_daemons, launch_pingable  # noqa: E402

PING_INTERVAL = 0.02


def host_of(cloud, instance_id):
    listed = json.loads(cloud.admin('instance', 'list', '--json'))
    return next(row['host_name'] for row in listed if row['instance_id'] == instance_id)


def timed_move(cloud, vpc_id, address, instance_id, target, cold):
    """(seconds, downtime seconds) of one move, the guest pinged from its router throughout."""
    pinger = subprocess.Popen(cloud.vpc_command(vpc_id, 'ping', '-i', str(PING_INTERVAL), '-W', '1', address),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    started = time.perf_counter()
    (move,) = json.loads(cloud.admin('instance', 'migrate', instance_id, '--host', target, '--json',
                                     *(['--cold'] if cold else [])))
    seconds = time.perf_counter() - started
    time.sleep(2)
    pinger.send_signal(2)            # SIGINT: ping prints its summary
    output, _ = pinger.communicate(timeout=10)
    if move['outcome'] != 'moved':
        raise RuntimeError(f'the move failed: {move}')
    sent, received = map(int, re.search(r'(\d+) packets transmitted, (\d+) received', output).groups())
    return seconds, (sent - received) * PING_INTERVAL


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    with cloud_on_two_daemons() as (cloud, ec2, _daemons):
        shown = launch_pingable(cloud, ec2)
        instance_id = shown['InstanceId']
        results = {}
        for kind, cold in (('live', False), ('cold', True)):
            rounds = []
            for _ in range(args.rounds):
                target = 'right' if host_of(cloud, instance_id) == 'left' else 'left'
                rounds.append(timed_move(cloud, shown['VpcId'], shown['PrivateIpAddress'], instance_id, target, cold))
            results[kind] = {
                'seconds': [round(min(r[0] for r in rounds), 2), round(max(r[0] for r in rounds), 2)],
                'downtime_seconds': [round(min(r[1] for r in rounds), 2), round(max(r[1] for r in rounds), 2)]}
            print(f'{kind}: {results[kind]}', file=sys.stderr, flush=True)
        print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()
