"""A normal request's latency while slow clients hold connections open.

    python3 benchmarks/bench_slow_clients.py [--slow 50] [--requests 300]

Starts a server (the default: one process), measures DescribeRegions latency over one keep-alive
connection, then opens --slow connections that send a request's headers and then one byte of its
body every half second (none of them ever completes), and measures again. Prints p50/p99 for both.
"""
import argparse
import socket
import statistics
import threading
import time

from loadgen import RawConnection, raw_request, signed_request
from servers import REGION, Reservoir

SLOW_HEAD = (b'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n'
             b'Content-Length: 100000\r\n\r\nAction=')


def latencies(server, count):
    connection = RawConnection('127.0.0.1', server.port)
    payloads = [raw_request(f'127.0.0.1:{server.port}', signed_request(
        server.endpoint, REGION, *server.credentials, {'Action': 'DescribeRegions', 'Version': '2016-11-15'}))
        for _ in range(count)]
    timings = []
    for payload in payloads:
        started = time.perf_counter()
        status, _ = connection.exchange(payload)
        timings.append(time.perf_counter() - started)
        assert status == 200, status
    return timings


def trickle(server, count, stop):
    sockets = [socket.create_connection(('127.0.0.1', server.port)) for _ in range(count)]
    for connection in sockets:
        connection.sendall(SLOW_HEAD)

    def drip():
        while not stop.wait(0.5):
            for connection in sockets:
                connection.sendall(b'x')
    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    return sockets, thread


def summary(label, timings):
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f'{label:36} p50 {statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--slow', type=int, default=50)
    parser.add_argument('--requests', type=int, default=300)
    args = parser.parse_args()
    server = Reservoir().start()
    try:
        summary('no slow connections', latencies(server, args.requests))
        stop = threading.Event()
        sockets, thread = trickle(server, args.slow, stop)
        time.sleep(1)
        summary(f'{args.slow} slow connections open', latencies(server, args.requests))
        stop.set()
        thread.join()
        for connection in sockets:
            connection.close()
    finally:
        server.stop()


if __name__ == '__main__':
    main()
