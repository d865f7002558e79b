"""The instance flow with apache-libcloud's EC2NodeDriver: GET requests with everything in the
query string, signed SigV2 (its default) and SigV4. The driver has methods for most of the flow;
what it lacks (a page of DescribeInstances, an instance attribute) goes through its own
connection, signed and parsed the same way."""
import base64
import time

import pytest
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import NAMESPACE, EC2NodeDriver
from libcloud.compute.types import NodeState
from libcloud.utils.xml import findall, findtext

pytestmark = pytest.mark.clients

USER_DATA = '#!/bin/sh\necho "hello from libcloud"\n'


@pytest.fixture(params=['2', '4'], ids=['sigv2', 'sigv4'])
def driver(request, compute_server):
    credentials = compute_server.users[compute_server.new_user(f'libcloud-v{request.param}')]
    driver = EC2NodeDriver(credentials['access_key_id'], credentials['secret_access_key'],
                           signature_version=request.param, secure=False, host=compute_server.host,
                           port=compute_server.port)
    driver.region_name = compute_server.region   # the region SigV4 signs for
    assert driver.connection.signature_version == request.param
    return driver


def call(driver, action, **params):
    return driver.connection.request(driver.path, params={'Action': action, **params}).object


def wait_status(driver, ids, status, timeout=60):
    """Poll list_nodes until every node has the EC2 state `status` (libcloud keeps it in extra)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = driver.list_nodes(ex_node_ids=ids)
        if sorted(node.id for node in nodes) == sorted(ids) and {node.extra['status'] for node in nodes} == {status}:
            return nodes
        assert time.monotonic() < deadline, [(node.id, node.extra['status']) for node in nodes]
        time.sleep(0.3)


def wait_console(driver, node, text, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        output = driver.ex_get_console_output(node)['output'] or ''
        if text in output:
            return output
        assert time.monotonic() < deadline, output
        time.sleep(0.3)


def test_the_instance_flow_with_libcloud(driver, compute_server):
    driver.create_key_pair('laptop')
    image = NodeImage(id=compute_server.image_id, name=None, driver=driver)
    size = NodeSize(id='t1.micro', name='t1.micro', ram=128, disk=1, bandwidth=None, price=None, driver=driver)
    # create_node sends the name and ex_metadata as TagSpecification, and base64-encodes the user data.
    created = driver.create_node(name='web', size=size, image=image, ex_keyname='laptop', ex_userdata=USER_DATA,
                                 ex_metadata={'app': 'shop-web'}, ex_mincount=2, ex_maxcount=2)
    assert len(created) == 2
    ids = sorted(node.id for node in created)
    up = driver.wait_until_running(created, wait_period=0.3, timeout=60, ssh_interface='private_ips')
    assert sorted(node.id for node, _ in up) == ids
    assert all(addresses for _, addresses in up)

    # Filters.
    running = {node.id: node for node in driver.list_nodes(ex_filters={'instance-state-name': 'running'})}
    assert sorted(running) == ids
    assert {(node.name, node.state, node.extra['key_name']) for node in running.values()} == {
        ('web', NodeState.RUNNING, 'laptop')}
    assert {node.extra['tags']['app'] for node in running.values()} == {'shop-web'}
    assert sorted(node.id for node in driver.list_nodes(
        ex_filters={'instance-state-name': 'running', 'tag:app': 'shop-*'})) == ids
    assert driver.list_nodes(ex_filters={'tag:app': 'blog-*'}) == []

    # Paging over eight instances: list_nodes reads one page only, so follow NextToken by hand.
    more = driver.create_node(name='batch', size=size, image=image, ex_mincount=6, ex_maxcount=6)
    everything = sorted(ids + [node.id for node in more])
    pages, token = [], None
    while True:
        page = call(driver, 'DescribeInstances', MaxResults='5', **({'NextToken': token} if token else {}))
        pages.append([node.id for reservation in findall(page, 'reservationSet/item', NAMESPACE)
                      for node in driver._to_nodes(reservation, 'instancesSet/item')])
        token = findtext(page, 'nextToken', NAMESPACE)
        if not token:
            break
    assert [len(page) for page in pages] == [5, 3]
    assert sorted(sum(pages, [])) == everything
    assert sorted(node.id for node in driver.list_nodes()) == everything

    # Tags (libcloud numbers ResourceId and Tag from 0).
    first, second = (running[node_id] for node_id in ids)
    assert driver.ex_create_tags(first, {'tier': 'front', 'owner': 'shop'}) is True
    assert driver.ex_describe_tags(first) == {'Name': 'web', 'app': 'shop-web', 'tier': 'front', 'owner': 'shop'}
    assert driver.ex_delete_tags(first, {'owner': None}) is True
    assert driver.ex_describe_tags(first) == {'Name': 'web', 'app': 'shop-web', 'tier': 'front'}
    assert [node.id for node in driver.list_nodes(ex_filters={'tag:tier': 'front'})] == [first.id]

    # Elastic IPs: VPC style, then classic style.
    vpc = driver.ex_allocate_address(domain='vpc')
    assert vpc.extra['allocation_id']
    association_id = driver.ex_associate_address_with_node(first, vpc, domain='vpc')
    assert association_id
    # list_nodes adds DescribeAddresses' answer to the instance's ipAddress, so AWS lists it twice too.
    assert set(driver.list_nodes(ex_node_ids=[first.id])[0].public_ips) == {vpc.ip}
    assert driver.ex_describe_addresses_for_node(first) == [vpc.ip]
    [described] = [address for address in driver.ex_describe_all_addresses() if address.ip == vpc.ip]
    assert (described.instance_id, described.extra['association_id']) == (first.id, association_id)
    assert driver.ex_disassociate_address(described, domain='vpc') is True
    assert driver.list_nodes(ex_node_ids=[first.id])[0].public_ips == []
    assert driver.ex_release_address(vpc, domain='vpc') is True
    classic = driver.ex_allocate_address()
    driver.ex_associate_address_with_node(second, classic)
    assert driver.ex_describe_addresses_for_node(second) == [classic.ip]
    assert [address.ip for address in driver.ex_describe_all_addresses(only_associated=True)] == [classic.ip]
    assert driver.ex_disassociate_address(classic) is True
    assert driver.ex_release_address(classic) is True
    assert driver.ex_describe_all_addresses() == []

    # Stop, start, reboot.
    assert driver.ex_stop_node(first) is True
    wait_status(driver, [first.id], 'stopped')
    assert driver.ex_start_node(first) is True
    wait_status(driver, [first.id], 'running')
    assert driver.reboot_node(first) is True

    # Console output: libcloud base64-decodes <output>.
    console = wait_console(driver, first, 'rebooted')
    assert f'domain {first.id} started' in console
    wait_status(driver, [first.id], 'running')
    attribute = call(driver, 'DescribeInstanceAttribute', InstanceId=second.id, Attribute='userData')
    assert base64.b64decode(findtext(attribute, 'userData/value', NAMESPACE)).decode() == USER_DATA

    # Termination: still listed, as terminated.
    nodes = driver.list_nodes(ex_node_ids=everything)
    assert all(driver.destroy_node(node) is True for node in nodes)
    gone = wait_status(driver, everything, 'terminated')
    assert {node.state for node in gone} == {NodeState.TERMINATED}
    assert driver.list_nodes(ex_filters={'instance-state-name': 'running'}) == []
