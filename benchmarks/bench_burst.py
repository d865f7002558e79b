"""Cloud bursting: a site whose own hosts are full launches 1,000 instances onto a peer cloud.

    python3 benchmarks/bench_burst.py [--instances 1000] [--peer-hosts 100] [--reservations 1]

The peer is a second Reservoir on PEER_HOSTS simulated hosts; the site has one small simulated host
(full after its first instance) and the peer registered as an ec2+http host, reached through a
counting relay on loopback that tallies every request the site sends to the peer by its Action.
One account on the site launches N instances in RESERVATIONS RunInstances calls. Reports the seconds
from the first RunInstances until the site shows every instance running (the peer launched them and
the site's monitor saw them), the requests sent to the peer per instance by action, and the
DescribeInstances rounds the site's monitor made meanwhile.
"""
import argparse
import collections
import http.server
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from bench_instances import client, progress, wait_all_running
from servers import Reservoir


class CountingRelay:
    """An HTTP relay on loopback to the peer's endpoint that counts requests by EC2 action."""

    def __init__(self, target_port):
        self.counts = collections.Counter()
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                action = urllib.parse.parse_qs(body.decode()).get('Action', ['?'])[0]
                relay.counts[action] += 1
                # The Host header is kept as the site signed it.
                headers = {key: value for key, value in self.headers.items()
                           if key.lower() not in ('content-length', 'connection')}
                request = urllib.request.Request(f'http://127.0.0.1:{target_port}{self.path}', data=body,
                                                 headers=headers, method='POST')
                try:
                    with urllib.request.urlopen(request, timeout=120) as answer:
                        status, payload, kind = answer.status, answer.read(), answer.headers.get('Content-Type')
                except urllib.error.HTTPError as error:
                    status, payload, kind = error.code, error.read(), error.headers.get('Content-Type')
                self.send_response(status)
                self.send_header('Content-Type', kind or 'text/xml')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self):
        return collections.Counter(self.counts)

    def stop(self):
        self.server.shutdown()


def tiny_image(server, name):
    disk = server.home / f'{name}.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
    return server.admin('image', 'register', str(disk), '--name', name, '--public', '--owner', 'bench').strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--instances', type=int, default=1000)
    parser.add_argument('--peer-hosts', type=int, default=100)
    parser.add_argument('--reservations', type=int, default=1)
    args = parser.parse_args()
    per_host = -(-args.instances // args.peer_hosts) + 1
    peer = Reservoir(processes=2).start()
    site = Reservoir().start()
    relay = CountingRelay(peer.port)
    try:
        peer.admin('host', 'add', '--simulated', '--count', str(args.peer_hosts), '--cpus', str(per_host),
                   '--memory', str(per_host * 128))
        peer_image = tiny_image(peer, 'partner')
        site.admin('host', 'add', '--simulated', '--count', '1', '--cpus', '1', '--memory', '128')
        site_image = tiny_image(site, 'bench')
        site.admin('host', 'add', f'ec2+http://127.0.0.1:{relay.port}/', '--name', 'partner', '--region',
                   peer.region, '--access-key', peer.credentials[0], '--secret-key', peer.credentials[1],
                   '--capacity', f't1.micro={args.instances}')
        site.admin('image', 'map', site_image, '--host', 'partner', '--peer-image', peer_image)
        ec2 = client(site)
        ec2.run_instances(ImageId=site_image, MinCount=1, MaxCount=1, InstanceType='t1.micro')   # fills the site
        wait_all_running(ec2)
        time.sleep(3)                      # the site's worker has claimed the peer and polled it
        before = relay.snapshot()
        progress(f'launching {args.instances} instances in {args.reservations} reservation(s)')
        started = time.perf_counter()
        per_reservation = args.instances // args.reservations
        for _ in range(args.reservations):
            ec2.run_instances(ImageId=site_image, MinCount=per_reservation, MaxCount=per_reservation,
                              InstanceType='t1.micro')
        if not wait_all_running(ec2, timeout=1200):
            raise RuntimeError('not all instances were running after 20 minutes')
        seconds = time.perf_counter() - started
        sent = relay.snapshot() - before
        launched = per_reservation * args.reservations
        on_peer = json.loads(site.admin('host', 'list', '--json'))
        results = {
            'instances': launched, 'reservations': args.reservations, 'peer_hosts': args.peer_hosts,
            'seconds_to_all_running': round(seconds, 2),
            'instances_per_second': round(launched / seconds, 1),
            'requests_to_peer': dict(sorted(sent.items())),
            'requests_per_instance': round(sum(sent.values()) / launched, 3),
            'run_instances_per_reservation': sent['RunInstances'] / args.reservations,
            'peer_vcpus_in_use': next(row for row in on_peer if row['name'] == 'partner')['used_cpus'],
        }
        print(json.dumps(results, indent=2))
    finally:
        relay.stop()
        site.stop()
        peer.stop()


if __name__ == '__main__':
    main()
