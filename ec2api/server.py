"""Run the front-end under Granian.

Granian reads and writes HTTP in Rust and calls `front.Front` in an event loop through its RSGI
interface: request bodies are read there, so slow clients hold no thread, and complete requests go
to the Flask application on a pool of `threads` threads (uploads on threads of their own). A
keep-alive request costs the server a small fraction of what a pure-Python HTTP server spends (see
benchmarks/bench_keypairs.py). The embedded default is one worker process sharing SQLite with the
back-end's own threads; scale-out runs several worker processes against PostgreSQL. Workers open
their database connections after the fork, so no connection is ever shared between processes.
"""
import ctypes
import faulthandler
import logging
import os
import signal

from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server

from .app import create_app
from .front import Front

log = logging.getLogger(__name__)

# How long an idle keep-alive connection may wait for its next request's headers.
HEADER_READ_TIMEOUT_MS = 75_000
_PR_SET_PDEATHSIG = 1


def serve(cloud, host, port, *, workers, threads, run_worker, access_log=False):
    """Serve until stopped; `reservoir serve` chooses the number of processes and threads."""
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    server = Server(
        'reservoir',
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        websockets=False,
        workers=workers,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS, keep_alive=True),
        log_level=LogLevels.info,
        log_access=access_log,
        # Workers are processes: a crash of one is a restart, not an outage.
        respawn_failed_workers=True,
    )
    serving_pid = os.getpid()
    server.serve(target_loader=lambda: _worker_app(cloud, run_worker, serving_pid, threads), wrap_loader=False)


def _worker_app(cloud, run_worker, serving_pid, threads):
    """Runs in each worker process after the fork: its own connections, its own back-end threads."""
    _exit_with_parent(serving_pid)
    _stacks_on_request()
    cloud.after_fork()
    if run_worker:
        cloud.start_worker()
    return Front(create_app(cloud), threads, cloud.config.server)


def _stacks_on_request():
    """SIGUSR1 prints every thread's stack to stderr (the server log): what a stuck server is doing."""
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def _exit_with_parent(serving_pid):
    """Ask the kernel to stop this worker when the serving process dies, even by SIGKILL.

    Otherwise a killed server leaves workers that keep answering on its port with a stale state.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed parent
        log.warning('cannot tie worker %d to its parent process', os.getpid())
    if os.getppid() != serving_pid:  # it died before the request took effect
        os._exit(0)
