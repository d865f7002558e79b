"""The EC2-peer driver against real EC2 endpoints on loopback: a second Reservoir on simulated hosts
(SigV4 and SigV2), and a third-party implementation (moto's server), so the driver is not tied to
Reservoir's own answers. The driver alone: deploy, the states it reports, stop and start, reboot,
console output, destroy, and a deploy repeated after a crash that launches nothing twice; a
reservation's instances in one RunInstances; addresses and tags as the peer reports them."""
import base64
import collections
import json
import socket

import botocore.exceptions
import pytest

from backend.drivers.base import DomainState, DriverError, LaunchSpec
from backend.drivers.ec2_peer import Ec2PeerDriver, PeerSettings
from tests.support.server import simulated_cloud
from tests.support.waiting import wait_for

LOCAL_IMAGE = 'ami-0000000000000000a'


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture(scope='module')
def reservoir_peer(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('peer-home'), ('partner',))
    yield live
    live.stop()


@pytest.fixture(scope='module')
def moto_peer():
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address='127.0.0.1', port=port, verbose=False)
    server.start()
    yield f'ec2+http://127.0.0.1:{port}/'
    server.stop()


def reservoir_driver(peer, signature='v4', installation='cloud-a'):
    user = peer.users['partner']
    settings = PeerSettings('reservoir-1', user['access_key_id'], user['secret_access_key'], signature,
                            images={LOCAL_IMAGE: peer.image_id}, installation=installation)
    return Ec2PeerDriver(f'ec2+http://127.0.0.1:{peer.port}/', settings, capacity=(8, 8192))


def spec(instance_id, user_data=None, reservation_id=None, launch_index=0, tags=()):
    return LaunchSpec(instance_id=instance_id, image_id=LOCAL_IMAGE, instance_type='t1.micro', vcpus=1,
                      memory_mib=512, zone='reservoir-1a', root=None, ssh_public_key='ssh-ed25519 AAAAC3 test',
                      user_data=user_data, reservation_id=reservation_id or 'r-' + instance_id[2:],
                      launch_index=launch_index, tags=tags)


def on_peer(driver, instance_id):
    """The peer's live instances marked with `instance_id`, asked of the peer directly."""
    answer = driver.ec2.describe_instances(Filters=[{'Name': 'tag:reservoir:instance-id', 'Values': [instance_id]}])
    return [i for r in answer['Reservations'] for i in r['Instances']
            if i['State']['Name'] not in ('shutting-down', 'terminated')]


def count_requests(driver):
    """A Counter of the operations the driver sends from now on."""
    sent = collections.Counter()
    driver.ec2.meta.events.register('before-call.ec2.*', lambda model, **_: sent.update([model.name]))
    return sent


def exercise(driver, instance_id):
    """The life cycle through the driver, as the worker drives a host."""
    launch = spec(instance_id, base64.b64encode(b'#!/bin/sh\necho hello\n').decode())
    driver.deploy(launch)
    driver.deploy(launch)             # again, as after a crash: still one instance on the peer
    assert len(on_peer(driver, instance_id)) == 1
    wait_for(lambda: driver.states().get(instance_id) is DomainState.RUNNING, timeout=60)
    reported = driver.report()[instance_id]
    assert reported.private_ip == on_peer(driver, instance_id)[0]['PrivateIpAddress']
    assert driver.shutdown(instance_id)
    wait_for(lambda: driver.state(instance_id) is DomainState.SHUTOFF, timeout=60)
    driver.deploy(launch)             # a deploy of a stopped instance starts it
    wait_for(lambda: driver.state(instance_id) is DomainState.RUNNING, timeout=60)
    driver.reboot(instance_id)
    assert isinstance(driver.console_output(instance_id), bytes)
    driver.destroy(instance_id)
    wait_for(lambda: instance_id not in driver.states(), timeout=60)
    assert driver.state(instance_id) is None
    driver.destroy(instance_id)       # idempotent


def test_a_reservoir_peer_runs_the_life_cycle(reservoir_peer):
    driver = reservoir_driver(reservoir_peer)
    exercise(driver, 'i-0123456789abcdef0')
    # The peer's instance carries the context as user data cloud-init reads.
    partner = reservoir_peer.client('partner')
    (instance,) = [i for r in partner.describe_instances(Filters=[
        {'Name': 'tag:reservoir:instance-id', 'Values': ['i-0123456789abcdef0']}])['Reservations']
        for i in r['Instances']]
    user_data = partner.describe_instance_attribute(InstanceId=instance['InstanceId'], Attribute='userData')
    text = base64.b64decode(user_data['UserData']['Value']).decode()
    assert '#cloud-config' in text and 'ssh-ed25519 AAAAC3 test' in text and 'echo hello' in text


def test_a_reservoir_peer_signing_in_sigv2(reservoir_peer):
    exercise(reservoir_driver(reservoir_peer, signature='v2'), 'i-0123456789abcdef1')


def test_installations_see_only_their_own_instances_on_a_shared_peer(reservoir_peer):
    ours, theirs = reservoir_driver(reservoir_peer), reservoir_driver(reservoir_peer, installation='cloud-b')
    ours.deploy(spec('i-0123456789abcdef2'))
    assert 'i-0123456789abcdef2' in ours.states() and 'i-0123456789abcdef2' not in theirs.states()
    ours.destroy('i-0123456789abcdef2')


def test_what_the_peer_refuses_is_a_driver_error(reservoir_peer, moto_peer):
    unmapped = reservoir_driver(reservoir_peer)
    with pytest.raises(DriverError, match='no image of the peer'):
        unmapped.deploy(LaunchSpec(instance_id='i-0123456789abcdef3', image_id='ami-00000000000000bad',
                                   instance_type='t1.micro', vcpus=1, memory_mib=512, zone='z', root=None))
    wrong_keys = Ec2PeerDriver(f'ec2+http://127.0.0.1:{reservoir_peer.port}/',
                               PeerSettings('reservoir-1', 'AKIAWRONG', 'wrong'), capacity=(1, 1))
    with pytest.raises(DriverError, match='refused'):
        wrong_keys.states()
    unreachable = Ec2PeerDriver(f'ec2+http://127.0.0.1:{free_port()}/', PeerSettings('r', 'a', 'b'))
    with pytest.raises(DriverError, match='cannot be reached'):
        unreachable.states()


def test_a_third_party_ec2_peer_runs_the_life_cycle(moto_peer):
    probe = Ec2PeerDriver(moto_peer, PeerSettings('us-east-1', 'testing', 'testing'))
    image_id = probe.ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId']
    driver = Ec2PeerDriver(moto_peer, PeerSettings('us-east-1', 'testing', 'testing',
                                                   images={LOCAL_IMAGE: image_id}, installation='cloud-a'))
    exercise(driver, 'i-0123456789abcdef4')


def test_a_reservation_goes_out_in_one_run_instances(reservoir_peer):
    driver = reservoir_driver(reservoir_peer)
    ids = [f'i-0123456789abcde{n:02x}' for n in range(16, 19)]
    specs = [spec(i, reservation_id='r-0000000000000abc1', launch_index=n, tags=(('team', 'red'),))
             for n, i in enumerate(ids)]
    sent = count_requests(driver)
    assert driver.deploy_many(specs) == {i: None for i in ids}
    assert sent['RunInstances'] == 1 and sent['DescribeInstances'] == 1
    assert driver.deploy_many(specs) == {i: None for i in ids}     # again: nothing more launched
    assert sent['RunInstances'] == 1
    assert all(len(on_peer(driver, i)) == 1 for i in ids)
    report = driver.report()
    assert [report[i].tags for i in ids] == [(('team', 'red'),)] * 3     # the user's tags only
    for instance_id in ids:
        driver.destroy(instance_id)


def test_a_deploy_that_crashed_before_marking_takes_the_launched_instances_over(reservoir_peer):
    driver = reservoir_driver(reservoir_peer)
    ids = ['i-0123456789abcde20', 'i-0123456789abcde21']
    specs = [spec(i, reservation_id='r-0000000000000abc2', launch_index=n) for n, i in enumerate(ids)]
    sent = count_requests(driver)

    def lost_connection(**_):
        raise botocore.exceptions.EndpointConnectionError(endpoint_url='peer')
    driver.ec2.meta.events.register('before-call.ec2.CreateTags', lost_connection, unique_id='cut')
    outcomes = driver.deploy_many(specs)
    assert all(isinstance(error, DriverError) for error in outcomes.values())
    driver.ec2.meta.events.unregister('before-call.ec2.CreateTags', unique_id='cut')
    # One member was terminated meanwhile: the other takes one launched instance, the spare goes.
    assert driver.deploy_many(specs[1:]) == {ids[1]: None}
    assert sent['RunInstances'] == 1 and sent['TerminateInstances'] == 1
    assert len(on_peer(driver, ids[1])) == 1 and not on_peer(driver, ids[0])
    driver.destroy(ids[1])


def test_tags_are_mirrored_and_addresses_reported(reservoir_peer):
    driver = reservoir_driver(reservoir_peer)
    instance_id = 'i-0123456789abcde30'
    driver.deploy(spec(instance_id, tags=(('a', '1'), ('b', '2'))))
    driver.mirror_tags(instance_id, (('a', 'one'), ('c', '3')), ('b',))
    reported = driver.report()[instance_id]
    assert reported.tags == (('a', 'one'), ('c', '3'))
    (instance,) = on_peer(driver, instance_id)
    assert (reported.private_ip, reported.public_ip) == (instance.get('PrivateIpAddress'),
                                                         instance.get('PublicIpAddress'))
    driver.destroy(instance_id)


def test_the_peers_instance_limit_is_its_capacity_when_none_is_declared(reservoir_peer, moto_peer, tmp_path):
    limit = reservoir_driver(reservoir_peer).instance_limit()
    shown = reservoir_peer.client('partner').describe_account_attributes(AttributeNames=['max-instances'])
    assert limit == int(shown['AccountAttributes'][0]['AttributeValues'][0]['AttributeValue'])
    assert Ec2PeerDriver(moto_peer, PeerSettings('us-east-1', 'testing', 'testing')).instance_limit() > 0
    site = simulated_cloud(tmp_path / 'site', ('alice',), hosts=1, start=False)
    partner = reservoir_peer.users['partner']
    added = json.loads(site.admin('host', 'add', f'ec2+http://127.0.0.1:{reservoir_peer.port}/', '--name', 'p',
                                  '--region', 'reservoir-1', '--access-key', partner['access_key_id'],
                                  '--secret-key', partner['secret_access_key'], '--json'))
    m1_small_vcpus = 1
    assert added[0]['cpus'] == limit * m1_small_vcpus
