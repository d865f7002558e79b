"""The VM manager on PostgreSQL: the same launches, leases and lifecycle as on SQLite, and several
processes sharing one database without overcommitting hosts, double-leasing or doing work twice."""
import multiprocessing

import pytest

from backend.instances import Criterion, LaunchRequest
from backend.worker import Worker
from tests.support.postgres import open_cloud, prepare

pytestmark = pytest.mark.postgres


def test_launch_describe_and_lifecycle_on_postgres(pg_home):
    owner, image_id = prepare(pg_home)
    with open_cloud(pg_home) as cloud:
        launched = cloud.instances.run(owner, LaunchRequest(image_id, 3, 3, 'm1.small', tags=(('role', 'web'),)))
        worker = Worker(cloud)
        worker.claim_hosts()
        worker.dispatch(wait=True)
        running = cloud.instances.describe(owner, criteria=[Criterion('instance-state-name', ('running',)),
                                                            Criterion('tag:role', ('web',))])
        assert {i.instance_id for i in running} == {i.instance_id for i in launched}
        cloud.instances.terminate(owner, [launched[0].instance_id])
        worker.dispatch(wait=True)
        states = {i.instance_id: i.state for i in cloud.instances.describe(owner)}
        assert states[launched[0].instance_id] == 'terminated'
        assert sum(host.used_cpus for host in cloud.hosts.list()) == 2
        worker.stop()


def _launch_many(environ, owner, image_id, count, results):
    with open_cloud(environ) as cloud:
        launched = 0
        for _ in range(count):
            try:
                launched += len(cloud.instances.run(owner, LaunchRequest(image_id, 1, 3, 't1.micro')))
            except Exception as error:   # capacity runs out on purpose
                if getattr(error, 'code', '') != 'InsufficientInstanceCapacity':
                    raise
        results.put(launched)


def test_concurrent_launches_from_several_processes_never_overcommit_or_double_lease(pg_home):
    owner, image_id = prepare(pg_home, hosts=3, cpus=8, memory=1024)   # 8 x 128 MiB per host: 24 fit
    results = multiprocessing.get_context('spawn').Queue()
    processes = [multiprocessing.get_context('spawn').Process(
        target=_launch_many, args=(pg_home, owner, image_id, 6, results)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    launched = sum(results.get(timeout=5) for _ in processes)
    with open_cloud(pg_home) as cloud:
        instances = cloud.instances.describe(owner)
        hosts = cloud.hosts.list()
    assert launched == len(instances) == 24
    assert len({i.private_ip for i in instances}) == 24 and len({i.mac for i in instances}) == 24
    for host in hosts:
        assert host.used_cpus <= host.cpus and host.used_memory_mib <= host.memory_mib
        assert host.used_memory_mib == 128 * sum(1 for i in instances if i.host_name == host.name)


def test_workers_sharing_the_database_split_hosts_and_deploy_each_instance_once(pg_home):
    owner, image_id = prepare(pg_home, hosts=4)
    environ = dict(pg_home, RESERVOIR_COMPUTE_HOSTS_PER_WORKER='2', RESERVOIR_COMPUTE_POLL_SECONDS='0.1')
    clouds = [open_cloud(environ) for _ in range(2)]
    try:
        workers = [cloud.start_worker() for cloud in clouds]
        owned = [set(worker._owned) for worker in workers]
        assert len(owned[0]) == len(owned[1]) == 2 and not owned[0] & owned[1]
        launched = clouds[0].instances.run(owner, LaunchRequest(image_id, 16, 16, 't1.micro'))
        ids = [instance.instance_id for instance in launched]
        _wait(lambda: all(i.state == 'running' for i in clouds[1].instances.describe(owner, ids=ids)))
        for instance_id in ids:
            console = clouds[0].instance_files.console_output(instance_id).decode()
            assert console.count('started') == 1, console
    finally:
        for cloud in clouds:
            cloud.close()


def _wait(condition, timeout=60):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError('condition not met in time')
