"""Retries of one RunInstances with the same ClientToken, sent at once, as SDKs do after a timeout:
every retry gets the one reservation, and only that reservation's instances exist."""
import threading

import boto3
import pytest
from botocore.config import Config

from backend.instances import LaunchRequest
from tests.support.postgres import open_cloud, prepare

RETRIES = 4


def client_without_retries(server, user):
    """A boto3 client that shows every answer as it came: SDK retries would hide a 500."""
    credentials = server.users[user]
    return boto3.client('ec2', endpoint_url=server.endpoint, region_name=server.region,
                        aws_access_key_id=credentials['access_key_id'],
                        aws_secret_access_key=credentials['secret_access_key'],
                        config=Config(retries={'total_max_attempts': 1}))


def at_once(call):
    """Run `call` in RETRIES threads released together; their results or exceptions."""
    barrier = threading.Barrier(RETRIES)
    results = [None] * RETRIES

    def attempt(slot):
        barrier.wait()
        try:
            results[slot] = call()
        except Exception as error:      # noqa: BLE001 - the test reports what each retry got
            results[slot] = error
    threads = [threading.Thread(target=attempt, args=(slot,)) for slot in range(RETRIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.clients
@pytest.mark.parametrize('burst', range(3))      # each burst races anew: one may happen to serialise
def test_concurrent_retries_through_boto3_get_one_reservation(compute_server, burst):
    user = compute_server.new_user('token')
    clients = [client_without_retries(compute_server, user) for _ in range(RETRIES)]
    slots = iter(range(RETRIES))
    lock = threading.Lock()

    def run():
        with lock:
            client = clients[next(slots)]
        return client.run_instances(ImageId=compute_server.image_id, MinCount=2, MaxCount=2,
                                    InstanceType='t1.micro', ClientToken=f'retry-after-timeout-{burst}')
    answers = at_once(run)
    assert all(isinstance(answer, dict) for answer in answers), answers
    assert {answer['ReservationId'] for answer in answers} == {answers[0]['ReservationId']}
    ids = {tuple(sorted(i['InstanceId'] for i in answer['Instances'])) for answer in answers}
    assert len(ids) == 1 and len(next(iter(ids))) == 2
    listed = clients[0].describe_instances()['Reservations']
    assert sorted(i['InstanceId'] for r in listed for i in r['Instances']) == list(next(iter(ids)))
    clients[0].terminate_instances(InstanceIds=list(next(iter(ids))))


def assert_one_reservation(environ):
    owner, image_id = prepare(environ)
    with open_cloud(environ) as cloud:
        request = LaunchRequest(image_id, 2, 2, 't1.micro', client_token='retry-after-timeout')
        answers = at_once(lambda: cloud.instances.run(owner, request))
        assert all(isinstance(answer, list) for answer in answers), answers
        assert {tuple(i.instance_id for i in answer) for answer in answers} == {
            tuple(i.instance_id for i in answers[0])}
        assert len(cloud.instances.describe(owner)) == 2
        assert sum(host.used_cpus for host in cloud.hosts.list()) == 2


@pytest.mark.postgres
def test_concurrent_retries_on_postgres_get_one_reservation(pg_home):
    assert_one_reservation(pg_home)


def test_concurrent_retries_on_sqlite_get_one_reservation(tmp_path):
    assert_one_reservation({'RESERVOIR_HOME': str(tmp_path)})
