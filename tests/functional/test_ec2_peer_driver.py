"""The EC2-peer driver against real EC2 endpoints on loopback: a second Reservoir on simulated hosts
(SigV4 and SigV2), and a third-party implementation (moto's server), so the driver is not tied to
Reservoir's own answers. The driver alone: deploy, the states it reports, stop and start, reboot,
console output, destroy, and a deploy repeated after a crash that launches nothing twice."""
import base64
import socket

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


def spec(instance_id, user_data=None):
    return LaunchSpec(instance_id=instance_id, image_id=LOCAL_IMAGE, instance_type='t1.micro', vcpus=1,
                      memory_mib=512, zone='reservoir-1a', root=None, ssh_public_key='ssh-ed25519 AAAAC3 test',
                      user_data=user_data)


def exercise(driver, instance_id):
    """The life cycle through the driver, as the worker drives a host."""
    launch = spec(instance_id, base64.b64encode(b'#!/bin/sh\necho hello\n').decode())
    driver.deploy(launch)
    driver.deploy(launch)             # again, as after a crash: still one instance on the peer
    assert len(driver._ours(instance_id)) == 1
    wait_for(lambda: driver.states().get(instance_id) is DomainState.RUNNING, timeout=60)
    private_ip, _public_ip = driver.addresses()[instance_id]
    assert private_ip
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
