"""The host-driver seam: the libvirt driver on a simulated host, instance files, the driver registry."""
import shutil
import subprocess

import pycdlib
import pytest

from backend.drivers import open_driver
from backend.drivers.base import DiskImage, DomainState, DriverError, Feature, LaunchSpec, NicSpec
from backend.drivers.instance_files import InstanceFiles, context_script
from backend.drivers.libvirt import LibvirtDriver
from backend.host_names import HostNames

NIC = NicSpec(mac='02:00:0a:00:00:05', ip='10.0.0.5', cidr='10.0.0.0/20', gateway='10.0.0.1', dns='10.0.0.1',
              bridge='rsv-1')


def spec(instance_id='i-0123456789abcdef0', root=None, **changes):
    values = dict(instance_id=instance_id, image_id='ami-0123456789abcdef0', instance_type='t1.micro', vcpus=1,
                  memory_mib=128, zone='reservoir-1a', root=root, nics=(NIC,), ssh_public_key='ssh-ed25519 AAAA k',
                  user_data='IyEvYmluL3NoCg==')
    values.update(changes)
    return LaunchSpec(**values)


@pytest.fixture
def simulated(tmp_path):
    node = tmp_path / 'node.xml'
    node.write_text('<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>'
                    '<mhz>2000</mhz><model>x86_64</model></cpu><memory>4194304</memory></node>\n')
    driver = open_driver(f'test://{node}', InstanceFiles(tmp_path / 'instances'))
    yield driver
    driver.close()


def test_the_scheme_of_the_uri_chooses_the_driver(tmp_path):
    files = InstanceFiles(tmp_path)
    for uri in ('qemu:///embed?root=/x', 'qemu:///system', 'qemu+ssh://root@node1/system', 'xen:///system',
                f'test://{tmp_path}/node.xml'):
        assert isinstance(open_driver(uri, files), LibvirtDriver)
    with pytest.raises(DriverError, match='no driver'):
        open_driver('gopher://example/', files)


def test_a_simulated_host_runs_the_whole_lifecycle(simulated):
    assert simulated.simulated and simulated.supports(Feature.REBOOT)
    assert simulated.capacity() == (4, 4096)
    launch = spec()
    simulated.deploy(launch)
    simulated.deploy(launch)                                # a repeated deploy is not an error
    assert simulated.states() == {launch.instance_id: DomainState.RUNNING}
    simulated.reboot(launch.instance_id)
    assert simulated.shutdown(launch.instance_id) in (True, False)
    simulated.power_off(launch.instance_id)
    assert simulated.state(launch.instance_id) is DomainState.SHUTOFF
    assert not simulated.shutdown(launch.instance_id)       # not running: nothing to ask
    console = simulated.console_output(launch.instance_id).decode()
    assert f'domain {launch.instance_id} started' in console and 'rebooted' in console
    simulated.destroy(launch.instance_id)
    assert simulated.state(launch.instance_id) is None
    assert simulated.console_output(launch.instance_id) == b''
    simulated.destroy(launch.instance_id)                   # idempotent


def test_installations_sharing_a_hypervisor_see_only_their_own_domains(tmp_path):
    # test:///default is one host for every connection of this process, with a domain 'test' of its own.
    ours = open_driver('test:///default', InstanceFiles(tmp_path / 'ours'), names=HostNames('aaa', '/a'))
    theirs = open_driver('test:///default', InstanceFiles(tmp_path / 'theirs'), names=HostNames('bbb', '/b'))
    mine, other = spec('i-0000000000000000a'), spec('i-0000000000000000b')
    try:
        ours.deploy(mine)
        theirs.deploy(other)
        assert ours.states() == {mine.instance_id: DomainState.RUNNING}
        assert theirs.states() == {other.instance_id: DomainState.RUNNING}
        assert ours.state(other.instance_id) is None
        ours.destroy(other.instance_id)                     # not ours: nothing happens to it
        assert theirs.state(other.instance_id) is DomainState.RUNNING
        assert 'aaa-i-0000000000000000a' in ours.host.connection().listDefinedDomains() + [
            domain.name() for domain in ours.host.connection().listAllDomains()]
    finally:
        ours.destroy(mine.instance_id)
        theirs.destroy(other.instance_id)
        ours.close()
        theirs.close()


def test_a_domain_named_by_an_earlier_version_is_found_and_renamed_when_started_again(simulated):
    legacy = spec('i-0000000000000000c')
    connection = simulated.host.connection()
    connection.defineXML('<domain type="test"><name>i-0000000000000000c</name><memory>131072</memory>'
                         '<os><type>hvm</type></os></domain>').create()
    assert simulated.states() == {legacy.instance_id: DomainState.RUNNING}
    simulated.power_off(legacy.instance_id)
    assert simulated.state(legacy.instance_id) is DomainState.SHUTOFF
    simulated.deploy(legacy)                                # started again: under the installation's name
    names = [domain.name() for domain in connection.listAllDomains()]
    assert simulated.names.domain(legacy.instance_id) in names and legacy.instance_id not in names
    assert simulated.states() == {legacy.instance_id: DomainState.RUNNING}


def test_a_nic_whose_network_names_no_bridge_joins_the_installations_bridge(tmp_path):
    driver = LibvirtDriver('qemu:///system', InstanceFiles(tmp_path), names=HostNames('ab12', '/a'))
    unnamed = NicSpec(mac='02:00:0a:00:00:05', ip='10.0.0.5', cidr='10.0.0.0/20', network_key=7)
    assert driver._on_bridge(unnamed).bridge == HostNames('ab12', '/a').bridge(7)
    assert driver._on_bridge(NIC).bridge == 'rsv-1'


def test_verbs_on_a_missing_instance_raise_the_driver_error(simulated):
    with pytest.raises(DriverError):
        simulated.reboot('i-00000000000000000')


def test_an_unreachable_host_raises_the_driver_error(tmp_path):
    driver = open_driver(f'test://{tmp_path}/missing.xml', InstanceFiles(tmp_path))
    with pytest.raises(DriverError):
        driver.states()


def test_context_script_carries_openebula_variables_quoted():
    script = context_script(spec(ssh_public_key="ssh-rsa AAAA it's"))
    assert "ETH0_IP='10.0.0.5'" in script and "ETH0_MASK='255.255.240.0'" in script
    assert "ETH0_GATEWAY='10.0.0.1'" in script and "HOSTNAME='i-0123456789abcdef0'" in script
    assert "SSH_PUBLIC_KEY='ssh-rsa AAAA it'\\''s'" in script
    assert "USER_DATA='IyEvYmluL3NoCg=='" in script and "USERDATA_ENCODING='base64'" in script
    assert 'PUBLIC_IP' not in script


def test_only_eth0_gets_the_default_route_and_other_nics_their_subnet_router_for_replies():
    second = NicSpec(mac='02:00:0a:02:00:05', ip='10.2.0.5', cidr='10.2.0.0/24', gateway='10.2.0.1', bridge='rsv-3')
    script = context_script(spec(nics=(NIC, second)))
    assert "ETH0_GATEWAY='10.0.0.1'" in script and 'ETH0_SUBNET_GATEWAY' not in script
    assert 'ETH1_GATEWAY' not in script and "ETH1_SUBNET_GATEWAY='10.2.0.1'" in script


@pytest.mark.skipif(shutil.which('qemu-img') is None, reason='needs qemu-img')
def test_files_are_an_overlay_of_the_image_and_a_context_cd(tmp_path):
    image = tmp_path / 'image.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(image), '16M'], check=True)
    files = InstanceFiles(tmp_path / 'instances')
    launch = spec(root=DiskImage(str(image)))
    disk, iso = files.prepare(launch)
    info = subprocess.run(['qemu-img', 'info', '--output=json', str(disk)], capture_output=True, text=True).stdout
    assert str(image) in info
    cd = pycdlib.PyCdlib()
    cd.open(str(iso))
    try:
        assert cd.get_record(rr_path='/context.sh') is not None
    finally:
        cd.close()
    files.remove(launch.instance_id)
    assert not disk.exists()


def test_a_missing_image_is_a_driver_error(tmp_path):
    files = InstanceFiles(tmp_path / 'instances')
    with pytest.raises(DriverError, match='overlay'):
        files.prepare(spec(root=DiskImage(str(tmp_path / 'nothing.qcow2'))))
