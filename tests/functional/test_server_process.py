"""The serving process and its workers live and die together."""
import os
import signal
import socket
import time

from tests.support.server import LiveServer


def _group_alive(group):
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(port):
    with socket.socket() as probe:
        return probe.connect_ex(('127.0.0.1', port)) == 0


def test_workers_exit_when_the_serving_process_is_killed(tmp_path):
    server = LiveServer(home=tmp_path).start()
    try:
        server.create_user('alice')
        assert server.client().describe_regions()['Regions']
        os.kill(server.process.pid, signal.SIGKILL)   # the serving process alone, as the OOM killer would
        server.process.wait(30)
        deadline = time.monotonic() + 20
        while _group_alive(server.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(server.process.pid), 'a worker outlived the serving process'
        assert not _answers(server.port)
    finally:
        server.kill()
        if _group_alive(server.process.pid):
            os.killpg(server.process.pid, signal.SIGKILL)
