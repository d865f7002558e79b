"""The instance flow with boto 2.49, as the old scripts still built on it run it: once with its
default SigV4 signing and once with SigV2 forced. boto 2 has no waiters and no TagSpecifications:
such scripts poll `instance.update()` and tag right after launching."""
import base64

import pytest

from tests.support.boto2 import connect
from tests.support.waiting import wait_for

pytestmark = pytest.mark.clients

USER_DATA = '#!/bin/sh\necho "hello from boto 2"\n'


@pytest.fixture(params=['sigv4', 'sigv2'])
def ec2(request, compute_server):
    return connect(compute_server, compute_server.users[compute_server.new_user(f'boto2-{request.param}')],
                   request.param)


def wait_state(instances, state):
    """Poll each instance with update(), as boto 2 scripts do, until all are in `state`."""
    wait_for(lambda: all(instance.update() == state for instance in instances))


def listed(ec2, **kwargs):
    return {instance.id: instance for instance in ec2.get_only_instances(**kwargs)}


def test_the_instance_flow_with_boto2(ec2, compute_server):
    ec2.create_key_pair('laptop')
    reservation = ec2.run_instances(compute_server.image_id, min_count=2, max_count=2, key_name='laptop',
                                    user_data=USER_DATA, instance_type='t1.micro')
    instances = sorted(reservation.instances, key=lambda instance: instance.id)
    ids = [instance.id for instance in instances]
    assert len(ids) == 2 and {instance.state for instance in instances} <= {'pending', 'running'}
    assert ec2.create_tags(ids, {'app': 'shop-web'}) is True
    wait_state(instances, 'running')
    assert all(instance.private_ip_address for instance in instances)

    # Filters (boto 2 flattens the dict into Filter.N.Name / Filter.N.Value.M).
    running = listed(ec2, filters={'instance-state-name': 'running'})
    assert sorted(running) == ids
    assert {instance.key_name for instance in running.values()} == {'laptop'}
    assert {instance.tags['app'] for instance in running.values()} == {'shop-web'}
    assert sorted(listed(ec2, filters={'instance-state-name': 'running', 'tag:app': 'shop-*'})) == ids
    assert listed(ec2, filters={'tag:app': 'blog-*'}) == {}

    # Paging over eight instances: pages of at most five, next_token followed to the end.
    more = ec2.run_instances(compute_server.image_id, min_count=6, max_count=6, instance_type='t1.micro')
    everything = sorted(ids + [instance.id for instance in more.instances])
    pages, token = [], None
    while True:
        page = ec2.get_all_reservations(max_results=5, next_token=token)
        pages.append([instance.id for reservation in page for instance in reservation.instances])
        token = page.next_token
        if not token:
            break
    assert [len(page) for page in pages] == [5, 3]
    assert sorted(sum(pages, [])) == everything
    assert sorted(listed(ec2, max_results=5)) == everything

    # Tags.
    assert ec2.create_tags(ids, {'Name': 'web', 'tier': 'front'}) is True
    assert ec2.delete_tags([ids[1]], {'tier': None}) is True
    tags = ec2.get_all_tags(filters={'resource-id': ids})
    assert sorted((tag.res_id, tag.name, tag.value) for tag in tags) == sorted([
        (ids[0], 'Name', 'web'), (ids[0], 'app', 'shop-web'), (ids[0], 'tier', 'front'),
        (ids[1], 'Name', 'web'), (ids[1], 'app', 'shop-web')])
    assert sorted(listed(ec2, filters={'tag:tier': 'front'})) == [ids[0]]

    # Elastic IPs: VPC style, then classic style.
    address = ec2.allocate_address(domain='vpc')
    assert address.allocation_id
    associated = ec2.associate_address_object(instance_id=ids[0], allocation_id=address.allocation_id)
    assert associated.association_id
    assert listed(ec2, instance_ids=[ids[0]])[ids[0]].ip_address == address.public_ip
    assert ec2.disassociate_address(association_id=associated.association_id) is True
    assert listed(ec2, instance_ids=[ids[0]])[ids[0]].ip_address is None
    assert ec2.release_address(allocation_id=address.allocation_id) is True
    classic = ec2.allocate_address()
    assert ec2.associate_address(instance_id=ids[1], public_ip=classic.public_ip) is True
    [described] = ec2.get_all_addresses(addresses=[classic.public_ip])
    assert described.instance_id == ids[1]
    assert ec2.disassociate_address(public_ip=classic.public_ip) is True
    assert ec2.release_address(public_ip=classic.public_ip) is True
    assert ec2.get_all_addresses() == []

    # Stop, start, reboot.
    [stopping] = ec2.stop_instances([ids[0]])
    assert stopping.id == ids[0]
    wait_state(instances[:1], 'stopped')
    ec2.start_instances([ids[0]])
    wait_state(instances[:1], 'running')
    assert ec2.reboot_instances([ids[0]]) is True

    # Console output: boto 2 sends InstanceId.1 and base64-decodes <output>.
    def console():
        return ec2.get_console_output(ids[0]).output or b''
    wait_for(lambda: b'rebooted' in console())
    assert f'domain {ids[0]} started'.encode() in console()
    wait_state(instances[:1], 'running')
    user_data = ec2.get_instance_attribute(ids[1], 'userData')['userData']
    assert base64.b64decode(user_data).decode() == USER_DATA

    # Termination: still listed afterwards, as terminated.
    terminating = ec2.terminate_instances(everything)
    assert sorted(instance.id for instance in terminating) == everything
    wait_state(instances, 'terminated')
    assert {instance.state for instance in listed(ec2, instance_ids=everything).values()} == {'terminated'}
    assert listed(ec2, filters={'instance-state-name': 'running'}) == {}
