"""Real VMs through boto3: the stock image on the embedded QEMU host, in a namespace of our own.

Each test boots at most three guests at once (TCG on two cores). Guests report on their serial
console, which GetConsoleOutput returns: that is how the tests see inside them.
"""
import json
import ipaddress
import secrets
import sys
import time

import pytest

from backend.host_names import HostNames

from .conftest import (CONTEXTUALIZED, console, icmp_in, qemu_pids, security_group, tcp_in, wait_for_console,
                       wait_for_states)

pytestmark = pytest.mark.vm

OTHER_GATEWAY = '10.1.0.1'          # the network conftest creates, 10.1.0.0/20
INSTANCE_TYPE = 't1.micro'
CLEAN_SHUTDOWN = 'reservoir: stopping'     # the guest's shutdown script, run on the ACPI power button
ADDRESS_TIMEOUT = 30


def launch(ec2, image_id, count=1, script=None, subnet_id=None, **extra):
    """RunInstances; `script` is the user data as text (boto3 encodes it)."""
    arguments = dict(ImageId=image_id, MinCount=count, MaxCount=count, InstanceType=INSTANCE_TYPE, **extra)
    if script is not None:
        arguments['UserData'] = script
    if subnet_id is not None:
        arguments['SubnetId'] = subnet_id
    return ec2.run_instances(**arguments)['Instances']


def describe(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])['Reservations'][0]['Instances'][0]


def show_at_boot(label, path):
    """Shell lines that make every later boot print `label: <content of path>` on the console."""
    return (f"printf '#!/bin/sh\\necho \"{label}: $(cat {path})\"\\n' > /root/show-{label}\n"
            f'chmod +x /root/show-{label}\n'
            f'echo "::sysinit:/root/show-{label}" >> /etc/inittab\n')


def terminate(ec2, *ids):
    ec2.terminate_instances(InstanceIds=list(ids))
    wait_for_states(ec2, list(ids), {'terminated'})


def test_local_host_and_stock_image_are_registered_once(ec2, vm_cloud):
    qemu_conf = (vm_cloud.home / 'home' / 'qemu' / 'etc' / 'qemu.conf').read_text()
    assert 'user = "+0"' in qemu_conf and 'stdio_handler = "file"' in qemu_conf
    (host,) = json.loads(vm_cloud.admin('host', 'add-local', '--json'))
    assert (host['name'], host['domain_type']) in (('local', 'qemu'), ('local', 'kvm'))
    assert host['uri'] == f"qemu:///embed?root={vm_cloud.home / 'home' / 'qemu'}"
    assert [h['name'] for h in json.loads(vm_cloud.admin('host', 'list', '--json'))] == ['local']
    again = json.loads(vm_cloud.admin('image', 'install-stock', '--json'))
    assert again['machine']['image_id'] == vm_cloud.image_id
    (image,) = ec2.describe_images(ImageIds=[vm_cloud.image_id])['Images']
    assert (image['Public'], image['State'], image['ImageType'], image['ImageOwnerAlias']) == (
        True, 'available', 'machine', 'reservoir')
    kernel, ramdisk = image['KernelId'], image['RamdiskId']
    assert {i['ImageId']: i['ImageType'] for i in ec2.describe_images(ImageIds=[kernel, ramdisk])['Images']} == {
        kernel: 'kernel', ramdisk: 'ramdisk'}


def test_console_shows_address_hostname_and_user_data(ec2, vm_cloud):
    token = secrets.token_hex(4)
    (instance,) = launch(ec2, vm_cloud.image_id, script=f'#!/bin/sh\necho "user data says {token}"\n')
    instance_id, ip = instance['InstanceId'], instance['PrivateIpAddress']
    text = wait_for_console(ec2, instance_id, CONTEXTUALIZED)
    assert f'reservoir-context: ip {ip}/20' in text
    assert f'reservoir-context: hostname {instance_id}' in text
    assert f'user data says {token}' in text
    assert wait_for_states(ec2, [instance_id], {'running'}) == {instance_id: 'running'}
    terminate(ec2, instance_id)


def default_subnet(ec2, zone):
    (subnet,) = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']},
                                              {'Name': 'availability-zone', 'Values': [zone]}])['Subnets']
    return subnet


def gateway_of(subnet):
    return str(ipaddress.IPv4Network(subnet['CidrBlock'])[1])


def test_vpcs_with_the_same_addresses_stay_apart_and_subnets_of_one_vpc_route(ec2, vm_cloud):
    zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
    mine = default_subnet(ec2, zone)
    (target,) = launch(ec2, vm_cloud.image_id, SubnetId=mine['SubnetId'])
    wait_for_console(ec2, target['InstanceId'], CONTEXTUALIZED)
    target_ip = target['PrivateIpAddress']

    def probe(gateway):
        return (f'#!/bin/sh\n'
                f'ping -c 3 -W 2 {gateway} >/dev/null 2>&1; echo "ping-gateway exit $?"\n'
                f'ping -c 3 -W 2 {target_ip} >/dev/null 2>&1; echo "ping-target exit $?"\n')

    # A second subnet of the same VPC: its instances reach the target through the VPC's router.
    second = ec2.create_subnet(VpcId=mine['VpcId'], CidrBlock='172.31.200.0/24', AvailabilityZone=zone)['Subnet']
    (neighbour,) = launch(ec2, vm_cloud.image_id, script=probe(gateway_of(second)), SubnetId=second['SubnetId'])
    # Another account's default VPC has the very same addresses; its instance must not reach ours.
    other = vm_cloud.client(vm_cloud.other_user)
    theirs = default_subnet(other, zone)
    assert theirs['CidrBlock'] == mine['CidrBlock'] and theirs['VpcId'] != mine['VpcId']
    spare = str(ipaddress.IPv4Address(target_ip) + 10)
    (foreigner,) = launch(other, vm_cloud.image_id, script=probe(gateway_of(theirs)), SubnetId=theirs['SubnetId'],
                          PrivateIpAddress=spare)
    (stranger,) = launch(ec2, vm_cloud.image_id, script=probe(OTHER_GATEWAY), subnet_id=vm_cloud.other_subnet)
    assert stranger['PrivateIpAddress'].startswith('10.1.')
    near = wait_for_console(ec2, neighbour['InstanceId'], CONTEXTUALIZED)
    assert 'ping-gateway exit 0' in near and 'ping-target exit 0' in near, 'subnets of one VPC do not route'
    for name, instance, client in (('account', foreigner, other), ('network', stranger, ec2)):
        far = wait_for_console(client, instance['InstanceId'], CONTEXTUALIZED)
        assert 'ping-gateway exit 0' in far, f'the other {name} works in itself'
        assert 'ping-target exit' in far and 'ping-target exit 0' not in far, f'another {name} reached the target'
    terminate(ec2, target['InstanceId'], neighbour['InstanceId'], stranger['InstanceId'])
    terminate(other, foreigner['InstanceId'])
    ec2.delete_subnet(SubnetId=second['SubnetId'])


def test_disk_survives_stop_and_start_and_reboot(ec2, vm_cloud):
    token = secrets.token_hex(4)
    script = f'#!/bin/sh\necho {token} > /root/persist.txt\n{show_at_boot("persisted", "/root/persist.txt")}sync\n'
    (instance,) = launch(ec2, vm_cloud.image_id, script=script)
    instance_id, ip = instance['InstanceId'], instance['PrivateIpAddress']
    wait_for_console(ec2, instance_id, CONTEXTUALIZED)

    ec2.stop_instances(InstanceIds=[instance_id])
    wait_for_states(ec2, [instance_id], {'stopped'})
    assert not qemu_pids(instance_id)
    assert CLEAN_SHUTDOWN in console(ec2, instance_id), 'the guest did not shut down by ACPI'
    ec2.start_instances(InstanceIds=[instance_id])
    text = wait_for_console(ec2, instance_id, f'persisted: {token}', CONTEXTUALIZED)
    assert 'reservoir-context: user-data already ran' in text
    assert f'reservoir-context: ip {ip}/20' in text
    assert describe(ec2, instance_id)['PrivateIpAddress'] == ip
    wait_for_states(ec2, [instance_id], {'running'})

    boots = console(ec2, instance_id).count(CONTEXTUALIZED)
    ec2.reboot_instances(InstanceIds=[instance_id])
    wait_for_console(ec2, instance_id, (CONTEXTUALIZED, boots + 1), (f'persisted: {token}', boots + 1))
    terminate(ec2, instance_id)


def test_stop_powers_off_a_guest_that_ignores_acpi(ec2, vm_cloud):
    (instance,) = launch(ec2, vm_cloud.image_id, script='#!/bin/sh\nkillall acpid\necho "acpid gone"\n')
    instance_id = instance['InstanceId']
    wait_for_console(ec2, instance_id, 'acpid gone', CONTEXTUALIZED)
    ec2.stop_instances(InstanceIds=[instance_id])
    wait_for_states(ec2, [instance_id], {'stopped'})      # after the stop timeout, by force
    assert not qemu_pids(instance_id)
    assert CLEAN_SHUTDOWN not in console(ec2, instance_id)
    terminate(ec2, instance_id)


def test_terminate_leaves_no_process_overlay_or_context_cd(ec2, vm_cloud):
    (instance,) = launch(ec2, vm_cloud.image_id)
    instance_id = instance['InstanceId']
    wait_for_console(ec2, instance_id, CONTEXTUALIZED)
    directory = vm_cloud.home / 'home' / 'instances' / instance_id
    assert (directory / 'disk.qcow2').is_file() and (directory / 'context.iso').is_file()
    domain = HostNames().domain(instance_id)            # the default [cloud] host_prefix
    definition = vm_cloud.home / 'home' / 'qemu' / 'etc' / 'qemu' / f'{domain}.xml'   # libvirt's own
    assert definition.is_file()
    assert len(qemu_pids(instance_id)) == 1
    terminate(ec2, instance_id)
    assert not qemu_pids(instance_id)
    assert not directory.exists()
    assert not definition.exists(), 'the domain is still defined'


def wait_for_image(ec2, image_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (image,) = ec2.describe_images(ImageIds=[image_id])['Images']
        if image['State'] != 'pending':
            return image
        time.sleep(1)
    raise AssertionError(f'{image_id} is still pending')


def test_create_image_saves_the_disk_and_launches(ec2, vm_cloud):
    token = secrets.token_hex(4)
    script = f'#!/bin/sh\necho {token} > /root/saved.txt\n{show_at_boot("saved", "/root/saved.txt")}sync\n'
    (source,) = launch(ec2, vm_cloud.image_id, script=script)
    source_id = source['InstanceId']
    wait_for_console(ec2, source_id, CONTEXTUALIZED)

    paused_copy = ec2.create_image(InstanceId=source_id, Name=f'paused-{token}', NoReboot=True)['ImageId']
    assert wait_for_image(ec2, paused_copy)['State'] == 'available'
    clean_copy = ec2.create_image(InstanceId=source_id, Name=f'clean-{token}')['ImageId']
    image = wait_for_image(ec2, clean_copy)
    assert (image['State'], image['Public'], image['ImageType']) == ('available', False, 'machine')
    assert image['KernelId'] == source['KernelId'] and image['RamdiskId'] == source['RamdiskId']
    # Imaging with a reboot shut the source down and started it again, from its own disk.
    wait_for_console(ec2, source_id, 'user-data already ran', f'saved: {token}', CONTEXTUALIZED)
    wait_for_states(ec2, [source_id], {'running'})

    (from_paused,) = launch(ec2, paused_copy)
    (from_clean,) = launch(ec2, clean_copy)
    for instance in (from_paused, from_clean):
        text = wait_for_console(ec2, instance['InstanceId'], CONTEXTUALIZED, f'saved: {token}')
        assert f"reservoir-context: hostname {instance['InstanceId']}" in text
    terminate(ec2, source_id, from_paused['InstanceId'], from_clean['InstanceId'])


def page_from_host(vm_cloud, address):
    """The body of http://address/ fetched from the host's namespace, or None."""
    fetch = 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())'
    result = vm_cloud.inside(sys.executable, '-c', fetch, f'http://{address}/', check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def wait_until(condition, message, timeout=ADDRESS_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(message)


def test_elastic_ip_is_translated_by_the_vpc_router(ec2, vm_cloud):
    # The instance serves its own name over HTTP: an answer at the elastic IP comes from it.
    web = '#!/bin/sh\nmkdir -p /www\nhostname > /www/index.html\nhttpd -p 80 -h /www\n'
    http_in = security_group(ec2, 'http', tcp_in(80))
    (instance,) = launch(ec2, vm_cloud.image_id, script=web, SecurityGroupIds=[http_in])
    instance_id = instance['InstanceId']
    wait_for_console(ec2, instance_id, CONTEXTUALIZED)
    address = ec2.allocate_address(Domain='vpc')
    public_ip = address['PublicIp']
    assert page_from_host(vm_cloud, public_ip) is None

    association = ec2.associate_address(InstanceId=instance_id, AllocationId=address['AllocationId'])
    wait_until(lambda: page_from_host(vm_cloud, public_ip) == instance_id,
               f'{public_ip} does not lead to {instance_id}')
    def router_nat():
        return vm_cloud.in_vpc(instance['VpcId'], 'iptables', '-t', 'nat', '-S', 'PREROUTING').stdout
    assert f"-d {public_ip}/32 -j DNAT --to-destination {instance['PrivateIpAddress']}" in router_nat()

    ec2.disassociate_address(AssociationId=association['AssociationId'])
    wait_until(lambda: public_ip not in router_nat(), 'the DNAT rule stayed after disassociation')
    assert page_from_host(vm_cloud, public_ip) is None
    ec2.release_address(AllocationId=address['AllocationId'])
    terminate(ec2, instance_id)
    ec2.delete_security_group(GroupId=http_in)


def test_several_interfaces_at_launch_and_one_plugged_into_a_running_instance(ec2, vm_cloud):
    zone = ec2.describe_availability_zones()['AvailabilityZones'][0]['ZoneName']
    vpc_id = default_subnet(ec2, zone)['VpcId']
    first, second = (ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)['Subnet']['SubnetId']
                     for cidr in ('172.31.210.0/24', '172.31.220.0/24'))
    (near,) = launch(ec2, vm_cloud.image_id, SubnetId=first)
    (far,) = launch(ec2, vm_cloud.image_id, SubnetId=second)
    near_ip, far_ip = near['PrivateIpAddress'], far['PrivateIpAddress']
    # eth1 reaches its own subnet directly, not through the router.
    script = (f'#!/bin/sh\n'
              f'ping -c 3 -W 2 {near_ip} >/dev/null 2>&1; echo "ping-eth0-neighbour exit $?"\n'
              f'ping -I eth1 -c 3 -W 2 {far_ip} >/dev/null 2>&1; echo "ping-eth1-neighbour exit $?"\n')
    (both,) = launch(ec2, vm_cloud.image_id, script=script, NetworkInterfaces=[
        {'DeviceIndex': 0, 'SubnetId': first}, {'DeviceIndex': 1, 'SubnetId': second}])
    addresses = {n['Attachment']['DeviceIndex']: n['PrivateIpAddress'] for n in both['NetworkInterfaces']}
    for instance in (near, far):
        wait_for_console(ec2, instance['InstanceId'], CONTEXTUALIZED)
    text = wait_for_console(ec2, both['InstanceId'], CONTEXTUALIZED)
    assert f'reservoir-context: ip {addresses[0]}/24 on eth0' in text
    assert f'reservoir-context: ip {addresses[1]}/24 on eth1' in text
    assert 'ping-eth0-neighbour exit 0' in text and 'ping-eth1-neighbour exit 0' in text, text[-2000:]

    # An interface attached to the running `near` instance comes up as its eth1.
    # Pings from the router and from outside need a rule: the default group lets in its members only.
    default_group = ec2.describe_security_groups(Filters=[{'Name': 'vpc-id', 'Values': [vpc_id]},
                                                          {'Name': 'group-name', 'Values': ['default']}])
    ping_in = security_group(ec2, 'ping', icmp_in())
    made = ec2.create_network_interface(SubnetId=second, Groups=[
        default_group['SecurityGroups'][0]['GroupId'], ping_in])['NetworkInterface']
    plugged_ip = made['PrivateIpAddress']
    ec2.attach_network_interface(NetworkInterfaceId=made['NetworkInterfaceId'], InstanceId=near['InstanceId'],
                                 DeviceIndex=1)
    wait_for_console(ec2, near['InstanceId'], f'reservoir-context: ip {plugged_ip}/24 on eth1',
                     f'reservoir-context: replies from {plugged_ip} leave by eth1')
    answered = vm_cloud.in_vpc(vpc_id, 'ping', '-c', '3', '-W', '2', plugged_ip, check=False)
    assert answered.returncode == 0, 'the plugged interface does not answer'

    # An elastic IP on that interface reaches whichever instance the interface is attached to.
    address = ec2.allocate_address(Domain='vpc')
    ec2.associate_address(AllocationId=address['AllocationId'], NetworkInterfaceId=made['NetworkInterfaceId'])
    wait_until(lambda: vm_cloud.inside('ping', '-c', '1', '-W', '2', address['PublicIp'], check=False).returncode == 0,
               'the elastic IP of the plugged interface does not answer')
    attachment = ec2.describe_network_interfaces(NetworkInterfaceIds=[made['NetworkInterfaceId']])[
        'NetworkInterfaces'][0]['Attachment']['AttachmentId']
    ec2.detach_network_interface(AttachmentId=attachment)
    wait_until(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[made['NetworkInterfaceId']])[
        'NetworkInterfaces'][0]['Status'] == 'available', 'the interface stays attached')
    ec2.attach_network_interface(NetworkInterfaceId=made['NetworkInterfaceId'], InstanceId=far['InstanceId'],
                                 DeviceIndex=1)
    wait_for_console(ec2, far['InstanceId'], f'reservoir-context: ip {plugged_ip}/24 on eth1')
    wait_until(lambda: vm_cloud.inside('ping', '-c', '1', '-W', '2', address['PublicIp'], check=False).returncode == 0,
               'the elastic IP did not follow its interface')
    ec2.disassociate_address(PublicIp=address['PublicIp'])
    ec2.release_address(AllocationId=address['AllocationId'])
    terminate(ec2, near['InstanceId'], far['InstanceId'], both['InstanceId'])
    ec2.delete_network_interface(NetworkInterfaceId=made['NetworkInterfaceId'])
    ec2.delete_security_group(GroupId=ping_in)
    for subnet_id in (first, second):
        ec2.delete_subnet(SubnetId=subnet_id)
