"""Run the front-end under gunicorn.

The embedded default is one worker process with a few threads, sharing SQLite with the back-end's
own threads. Scale-out runs several worker processes against PostgreSQL. Workers open their
database connections after the fork, so no connection is ever shared between processes.
"""
import logging

from gunicorn.app.base import BaseApplication

from .app import create_app


class _Server(BaseApplication):
    def __init__(self, cloud, options, run_worker):
        self.cloud = cloud
        self.options = options
        self.run_worker = run_worker
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings:   # older gunicorn releases lack some settings
                self.cfg.set(key, value)

    def load(self):
        # Runs in the worker after the fork: drop connections inherited from the parent.
        self.cloud.after_fork()
        if self.run_worker:
            self.cloud.start_worker()
        return create_app(self.cloud)


def serve(cloud, host, port, workers=1, threads=8, access_log=False, run_worker=True):
    options = {
        'bind': f'{host}:{port}',
        'workers': workers,
        'worker_class': 'gthread',
        'threads': threads,
        'keepalive': 75,
        'timeout': 120,
        'graceful_timeout': 10,
        'accesslog': '-' if access_log else None,
        'loglevel': 'info',
        'proc_name': 'reservoir',
        # Several servers (tests, benchmarks) may run side by side: no shared control socket.
        'control_socket_disable': True,
    }
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    _Server(cloud, options, run_worker).run()
