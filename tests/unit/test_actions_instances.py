"""Instance actions through real boto3 clients: launch, describe, status, lifecycle, attributes."""
import base64
import datetime
import re

import botocore.exceptions
import pytest
from sqlalchemy import select

from backend.instances import transition
from backend.lifecycle import Event
from backend.models import Instance as InstanceRow
from tests.support.client_errors import error_code

FAST = {'Delay': 1, 'MaxAttempts': 3}


def run(world, ec2, count=1, **extra):
    extra.setdefault('ImageId', world.image_id)
    reservation = ec2.run_instances(MinCount=count, MaxCount=count, **extra)
    return [instance['InstanceId'] for instance in reservation['Instances']]


def instances_of(ec2, **kwargs):
    return {instance['InstanceId']: instance
            for reservation in ec2.describe_instances(**kwargs)['Reservations']
            for instance in reservation['Instances']}


def test_run_returns_a_pending_reservation_with_everything_asked_for(world, ec2):
    ec2.create_key_pair(KeyName='laptop')
    reservation = ec2.run_instances(
        ImageId=world.image_id, MinCount=2, MaxCount=2, KeyName='laptop', UserData='#!/bin/sh\necho hi\n',
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'role', 'Value': 'web'}]}])
    assert reservation['OwnerId'] == world.account('alice')
    assert re.fullmatch(r'r-[0-9a-f]{17}', reservation['ReservationId'])
    assert reservation['Groups'] == []
    first, second = reservation['Instances']
    assert (first['AmiLaunchIndex'], second['AmiLaunchIndex']) == (0, 1)
    assert first['State'] == {'Code': 0, 'Name': 'pending'}
    assert first['InstanceType'] == 'm1.small'
    assert first['KeyName'] == 'laptop'
    assert first['Tags'] == [{'Key': 'role', 'Value': 'web'}]
    assert first['StateTransitionReason'] == ''
    assert first['Placement']['AvailabilityZone'] == 'reservoir-1a'
    assert first['Placement']['Tenancy'] == 'default'
    ip = first['PrivateIpAddress']
    assert first['PrivateDnsName'] == f"ip-{ip.replace('.', '-')}.reservoir-1.compute.internal"
    assert first['NetworkInterfaces'][0]['MacAddress'] == '02:00:' + ':'.join(
        f'{int(part):02x}' for part in ip.split('.'))
    assert 'PublicIpAddress' not in first and 'PublicDnsName' not in first
    assert (first['Architecture'], first['RootDeviceType'], first['Hypervisor']) == (
        'x86_64', 'instance-store', 'xen')


def test_instances_become_running_and_a_waiter_sees_it(world, ec2):
    ids = run(world, ec2, 2)
    world.settle()
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=FAST)
    assert {i['State']['Name'] for i in instances_of(ec2, InstanceIds=ids).values()} == {'running'}


def test_user_data_must_be_base64(world, ec2):
    # boto3 encodes UserData itself; send what a client that forgot to encode would send.
    ec2.meta.events.register('before-call.ec2.RunInstances', _raw_user_data)
    assert error_code(run, world, ec2, UserData='placeholder') == 'InvalidParameterValue'


def _raw_user_data(params, **_kwargs):
    params['body']['UserData'] = 'not base64!'


def test_only_what_a_launch_makes_can_be_tagged_at_launch(world, ec2):
    specs = [{'ResourceType': 'snapshot', 'Tags': [{'Key': 'k', 'Value': 'v'}]}]
    assert error_code(run, world, ec2, TagSpecifications=specs) == 'InvalidParameterValue'


def test_filters_by_state_tag_wildcard_and_derived_names(world, ec2):
    web = run(world, ec2, 2, TagSpecifications=[{'ResourceType': 'instance',
                                                 'Tags': [{'Key': 'role', 'Value': 'web-front'}]}])
    db = run(world, ec2, 1, TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'role', 'Value': 'db'}]}])
    world.settle()
    ec2.stop_instances(InstanceIds=db)
    world.settle()

    def matching(*filters):
        return set(instances_of(ec2, Filters=[{'Name': name, 'Values': values} for name, values in filters]))

    assert matching(('instance-state-name', ['running'])) == set(web)
    assert matching(('instance-state-name', ['stopped'])) == set(db)
    assert matching(('instance-state-code', ['80'])) == set(db)
    assert matching(('tag:role', ['web-*'])) == set(web)
    assert matching(('tag:role', ['db', 'web-front'])) == set(web + db)
    assert matching(('tag-key', ['role']), ('instance-state-name', ['running'])) == set(web)
    assert matching(('tag-value', ['d?'])) == set(db)
    assert matching(('instance-type', ['m1.small']), ('image-id', [world.image_id])) == set(web + db)
    assert matching(('architecture', ['x86_64'])) == set(web + db)
    assert matching(('architecture', ['arm64'])) == set()
    ip = instances_of(ec2, InstanceIds=db)[db[0]]['PrivateIpAddress']
    assert matching(('private-ip-address', [ip])) == set(db)
    assert matching(('private-dns-name', [f"ip-{ip.replace('.', '-')}.reservoir-1.compute.internal"])) == set(db)
    assert matching(('availability-zone', ['reservoir-1a']), ('instance-id', [web[0]])) == {web[0]}


def test_an_unknown_filter_is_refused(ec2):
    assert error_code(ec2.describe_instances, Filters=[{'Name': 'flavour', 'Values': ['x']}]) == 'InvalidParameterValue'


def test_ids_and_filters_together_still_report_unknown_ids(world, ec2):
    (instance_id,) = run(world, ec2)
    filters = [{'Name': 'instance-state-name', 'Values': ['stopped']}]
    assert instances_of(ec2, InstanceIds=[instance_id], Filters=filters) == {}
    assert error_code(ec2.describe_instances, InstanceIds=['i-0123456789abcdef0'],
                      Filters=filters) == 'InvalidInstanceID.NotFound'


def test_pages_of_five_cover_every_instance_once(world, ec2):
    launched = run(world, ec2, 4) + run(world, ec2, 3) + run(world, ec2, 1)
    first = ec2.describe_instances(MaxResults=5)
    assert sum(len(r['Instances']) for r in first['Reservations']) == 5
    assert 'NextToken' in first
    seen = [instance['InstanceId']
            for page in ec2.get_paginator('describe_instances').paginate(PaginationConfig={'PageSize': 5})
            for reservation in page['Reservations'] for instance in reservation['Instances']]
    assert sorted(seen) == sorted(launched)


def test_a_page_groups_its_instances_into_their_reservations(world, ec2):
    run(world, ec2, 3)
    run(world, ec2, 2)
    reservations = ec2.describe_instances()['Reservations']
    assert sorted(len(r['Instances']) for r in reservations) == [2, 3]
    assert len({r['ReservationId'] for r in reservations}) == 2


def test_paging_limits_are_checked(world, ec2):
    (instance_id,) = run(world, ec2)
    assert error_code(ec2.describe_instances, MaxResults=4) == 'InvalidParameterValue'
    assert error_code(ec2.describe_instances, InstanceIds=[instance_id],
                      MaxResults=5) == 'InvalidParameterCombination'


def test_stop_start_reboot_report_state_changes(world, ec2):
    (instance_id,) = run(world, ec2)
    world.settle()
    stopping = ec2.stop_instances(InstanceIds=[instance_id], Force=True)['StoppingInstances'][0]
    assert stopping['PreviousState'] == {'Code': 16, 'Name': 'running'}
    assert stopping['CurrentState'] == {'Code': 64, 'Name': 'stopping'}
    world.settle()
    ec2.get_waiter('instance_stopped').wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    stopped = instances_of(ec2, InstanceIds=[instance_id])[instance_id]
    assert stopped['StateTransitionReason'].startswith('User initiated')
    assert stopped['StateReason']['Code'] == 'Client.UserInitiatedShutdown'
    starting = ec2.start_instances(InstanceIds=[instance_id])['StartingInstances'][0]
    assert (starting['PreviousState']['Name'], starting['CurrentState']['Name']) == ('stopped', 'pending')
    world.settle()
    assert ec2.reboot_instances(InstanceIds=[instance_id])['ResponseMetadata']['HTTPStatusCode'] == 200
    world.settle()
    assert instances_of(ec2, InstanceIds=[instance_id])[instance_id]['State']['Name'] == 'running'
    assert error_code(ec2.start_instances, InstanceIds=['i-0123456789abcdef0']) == 'InvalidInstanceID.NotFound'


def test_terminated_instances_stay_listed_as_terminated(world, ec2):
    (instance_id,) = run(world, ec2)
    world.settle()
    change = ec2.terminate_instances(InstanceIds=[instance_id])['TerminatingInstances'][0]
    assert change['CurrentState']['Name'] in ('shutting-down', 'terminated')
    world.settle()
    ec2.get_waiter('instance_terminated').wait(InstanceIds=[instance_id], WaiterConfig=FAST)
    assert instances_of(ec2, InstanceIds=[instance_id])[instance_id]['State'] == {'Code': 48, 'Name': 'terminated'}


def test_a_stopped_instance_shuts_down_and_terminates_without_freeing_its_host_twice(world, ec2):
    (instance_id,) = run(world, ec2)
    world.settle()
    ec2.stop_instances(InstanceIds=[instance_id])
    world.settle()
    change = ec2.terminate_instances(InstanceIds=[instance_id])['TerminatingInstances'][0]
    assert change['CurrentState'] == {'Code': 32, 'Name': 'shutting-down'}
    for name, value in (('instance-state-name', 'shutting-down'), ('instance-state-code', '32')):
        assert list(instances_of(ec2, Filters=[{'Name': name, 'Values': [value]}])) == [instance_id]
    world.settle()
    assert instances_of(ec2, InstanceIds=[instance_id])[instance_id]['State'] == {'Code': 48, 'Name': 'terminated'}
    assert [(host.used_cpus, host.used_memory_mib) for host in world.cloud.hosts.list()] == [(0, 0)] * 2


def test_terminated_instances_leave_every_listing_after_the_retention(world, ec2):
    gone, kept = run(world, ec2, count=2)
    world.settle()
    ec2.terminate_instances(InstanceIds=[gone])
    world.settle()
    ec2.get_waiter('instance_terminated').wait(InstanceIds=[gone], WaiterConfig=FAST)
    world.cloud.instances.terminated_retention = datetime.timedelta(0)
    assert set(instances_of(ec2)) == {kept}                                   # unfiltered listing
    assert set(instances_of(ec2, MaxResults=5)) == {kept}                      # a page
    assert set(instances_of(ec2, Filters=[{'Name': 'instance-id', 'Values': [gone, kept]}])) == {kept}
    assert error_code(ec2.describe_instances, InstanceIds=[gone]) == 'InvalidInstanceID.NotFound'


def test_lookups_by_any_number_of_ids_find_exactly_those(world, ec2):
    ids = run(world, ec2, count=7)
    for count in (1, 2, 3, 5, 7):   # slot counts of 1, 2, 4, 8: padded and exact shapes
        wanted = ids[:count]
        assert sorted(instances_of(ec2, InstanceIds=wanted)) == sorted(wanted)
    assert sorted(instances_of(ec2, InstanceIds=[ids[0], ids[0], ids[1]])) == sorted(ids[:2])


def test_console_output_is_base64_of_the_console(world, ec2):
    (instance_id,) = run(world, ec2)
    world.settle()
    output = ec2.get_console_output(InstanceId=instance_id)
    assert output['InstanceId'] == instance_id
    assert instance_id in output['Output']    # botocore has already decoded the base64
    assert 'Timestamp' in output


def test_user_data_round_trips_and_attributes_can_be_modified_while_stopped(world, ec2):
    (instance_id,) = run(world, ec2, UserData='#!/bin/sh\necho hello\n')
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='userData')
    assert base64.b64decode(attribute['UserData']['Value']) == b'#!/bin/sh\necho hello\n'
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='instanceType')[
        'InstanceType'] == {'Value': 'm1.small'}
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='disableApiTermination')[
        'DisableApiTermination'] == {'Value': False}
    assert error_code(ec2.modify_instance_attribute, InstanceId=instance_id,
                      InstanceType={'Value': 't2.micro'}) == 'IncorrectInstanceState'
    world.settle()
    ec2.stop_instances(InstanceIds=[instance_id])
    world.settle()
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={'Value': 't2.micro'})
    ec2.modify_instance_attribute(InstanceId=instance_id, UserData={'Value': b'second'})
    assert instances_of(ec2, InstanceIds=[instance_id])[instance_id]['InstanceType'] == 't2.micro'
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='userData')
    assert base64.b64decode(attribute['UserData']['Value']) == b'second'
    ec2.modify_instance_attribute(InstanceId=instance_id, Attribute='instanceType', Value='m1.small')
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='instanceType')[
        'InstanceType'] == {'Value': 'm1.small'}


def test_instance_status_follows_the_internal_state(world, ec2):
    pending, running, impaired = run(world, ec2), run(world, ec2), run(world, ec2)
    world.settle()
    with world.cloud.db.write() as session:
        row = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == impaired[0]))
        transition(session, row, Event.HOST_LOST)
    with world.cloud.db.write() as session:   # back to pending, as if just launched
        row = session.scalar(select(InstanceRow).where(InstanceRow.instance_id == pending[0]))
        transition(session, row, Event.STOP)
        row.state = 'pending'

    def statuses(**kwargs):
        return {s['InstanceId']: s for s in ec2.describe_instance_status(**kwargs)['InstanceStatuses']}

    default = statuses()
    assert set(default) == set(running + impaired)
    assert default[running[0]]['InstanceStatus']['Status'] == 'ok'
    assert default[running[0]]['SystemStatus']['Details'][0] == {'Name': 'reachability', 'Status': 'passed'}
    assert default[impaired[0]]['InstanceStatus']['Status'] == 'impaired'
    assert default[impaired[0]]['InstanceState'] == {'Code': 16, 'Name': 'running'}
    every = statuses(IncludeAllInstances=True)
    assert every[pending[0]]['InstanceStatus']['Status'] == 'initializing'
    only_ok = statuses(Filters=[{'Name': 'instance-status.status', 'Values': ['ok']}])
    assert set(only_ok) == set(running)
    assert error_code(ec2.describe_instance_status, Filters=[{'Name': 'colour', 'Values': ['x']}]) == \
        'InvalidParameterValue'


def test_status_pages_are_filled_past_instances_the_status_filter_drops(world, ec2):
    ids = run(world, ec2, 7)
    world.settle()
    with world.cloud.db.write() as session:
        for row in session.scalars(select(InstanceRow).where(InstanceRow.instance_id.in_(sorted(ids)[:4]))):
            transition(session, row, Event.HOST_LOST)
    seen = []
    for page in ec2.get_paginator('describe_instance_status').paginate(
            Filters=[{'Name': 'instance-status.status', 'Values': ['ok']}], PaginationConfig={'PageSize': 5}):
        seen += [status['InstanceId'] for status in page['InstanceStatuses']]
    assert seen == sorted(ids)[4:]


def test_malformed_and_unknown_ids(world, ec2):
    assert error_code(ec2.describe_instances, InstanceIds=['i-nothex']) == 'InvalidInstanceID.Malformed'
    assert error_code(ec2.terminate_instances, InstanceIds=['bogus']) == 'InvalidInstanceID.Malformed'
    assert error_code(ec2.describe_instances, InstanceIds=['i-0123456789abcdef0']) == 'InvalidInstanceID.NotFound'
    assert error_code(ec2.get_console_output, InstanceId='i-0123456789abcdef0') == 'InvalidInstanceID.NotFound'
    assert error_code(run, world, ec2, ImageId='ami-0123456789abcdef0') == 'InvalidAMIID.NotFound'


def test_another_account_can_neither_see_nor_touch_them(world, ec2):
    (instance_id,) = run(world, ec2)
    bob = world.client('bob')
    assert bob.describe_instances()['Reservations'] == []
    for call, kwargs in ((bob.describe_instances, {'InstanceIds': [instance_id]}),
                         (bob.terminate_instances, {'InstanceIds': [instance_id]}),
                         (bob.stop_instances, {'InstanceIds': [instance_id]}),
                         (bob.reboot_instances, {'InstanceIds': [instance_id]}),
                         (bob.get_console_output, {'InstanceId': instance_id}),
                         (bob.describe_instance_attribute, {'InstanceId': instance_id, 'Attribute': 'userData'})):
        assert error_code(call, **kwargs) == 'InvalidInstanceID.NotFound'
    assert instances_of(ec2, InstanceIds=[instance_id])[instance_id]['State']['Name'] == 'pending'


def test_a_repeated_client_token_returns_the_same_reservation(world, ec2):
    first = ec2.run_instances(ImageId=world.image_id, MinCount=1, MaxCount=1, ClientToken='once')
    again = ec2.run_instances(ImageId=world.image_id, MinCount=1, MaxCount=1, ClientToken='once')
    assert again['ReservationId'] == first['ReservationId']
    assert [i['InstanceId'] for i in again['Instances']] == [i['InstanceId'] for i in first['Instances']]
    assert error_code(ec2.run_instances, ImageId=world.image_id, MinCount=2, MaxCount=2,
                      ClientToken='once') == 'IdempotentParameterMismatch'
    assert len(instances_of(ec2)) == 1


def test_more_than_the_hosts_hold_is_refused_with_reasons(world, ec2):
    # Two hosts of 4 CPUs; m1.small takes one CPU each.
    assert error_code(run, world, ec2, 9) == 'InsufficientInstanceCapacity'
    assert instances_of(ec2) == {}
    assert len(run(world, ec2, 8)) == 8
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        run(world, ec2)
    error = raised.value.response['Error']
    assert error['Code'] == 'InsufficientInstanceCapacity'
    assert 'not enough free cpu (2)' in error['Message'] and 'sim-0000' not in error['Message']


def test_placement_in_a_group(world, ec2):
    ec2.create_placement_group(GroupName='together', Strategy='cluster')
    ids = run(world, ec2, 2, Placement={'GroupName': 'together'})
    placements = [instance['Placement'] for instance in instances_of(ec2, InstanceIds=ids).values()]
    assert {p['GroupName'] for p in placements} == {'together'}
    assert len({world.cloud.instances.describe(None, ids=[i])[0].host_name for i in ids}) == 1
    assert set(instances_of(ec2, Filters=[{'Name': 'placement-group-name', 'Values': ['together']}])) == set(ids)
    assert error_code(run, world, ec2, Placement={'GroupName': 'nowhere'}) == 'InvalidPlacementGroup.Unknown'


def test_tenants_neither_choose_nor_see_hosts(world, ec2):
    # Placing next to a chosen victim is a known attack on shared clouds: host choice is the
    # administrators'; tenants have no dedicated hosts, and host names never reach them.
    assert error_code(run, world, ec2, Placement={'HostId': 'sim-00002'}) == 'InvalidHostID.Malformed'
    assert error_code(run, world, ec2, Placement={'HostId': 'h-0123456789abcdef0'}) == 'InvalidHostID.NotFound'
    assert instances_of(ec2) == {}
    (launched,) = run(world, ec2)
    described = instances_of(ec2, InstanceIds=[launched])[launched]
    assert 'HostId' not in described['Placement'] and 'sim-0000' not in str(described)
    for name in world.cloud.hosts.list():
        assert instances_of(ec2, Filters=[{'Name': 'host-id', 'Values': [name.name, '*']}]) == {}


def test_filters_without_a_name_or_values_are_refused(world, ec2):
    for filters in ([{'Values': ['running']}], [{'Name': 'instance-state-name'}], [{'Name': '', 'Values': ['x']}]):
        for call in (ec2.describe_instances, ec2.describe_instance_status):
            assert error_code(call, Filters=filters) == 'InvalidParameterValue', (call, filters)


def test_a_constant_attribute_filter_that_fails_lists_nothing(world, ec2):
    (launched,) = run(world, ec2)
    assert instances_of(ec2, Filters=[{'Name': 'architecture', 'Values': ['arm64']}]) == {}
    assert set(instances_of(ec2, Filters=[{'Name': 'architecture', 'Values': ['x86_*']}])) == {launched}


def test_protections_refuse_terminate_and_stop_until_lifted(world, ec2):
    (instance_id,) = run(world, ec2, DisableApiTermination=True)
    world.settle()
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='disableApiTermination')[
        'DisableApiTermination'] == {'Value': True}
    assert error_code(ec2.terminate_instances, InstanceIds=[instance_id]) == 'OperationNotPermitted'
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={'Value': True})
    assert error_code(ec2.stop_instances, InstanceIds=[instance_id]) == 'OperationNotPermitted'
    ec2.modify_instance_attribute(InstanceId=instance_id, Attribute='disableApiStop', Value='false')
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={'Value': False})
    assert instances_of(ec2, InstanceIds=[instance_id])[instance_id]['State']['Name'] == 'running'
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_shutdown_behaviour_and_source_dest_check_are_kept(world, ec2):
    (instance_id,) = run(world, ec2, InstanceInitiatedShutdownBehavior='terminate')
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='instanceInitiatedShutdownBehavior')[
        'InstanceInitiatedShutdownBehavior'] == {'Value': 'terminate'}
    ec2.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={'Value': False})
    assert ec2.describe_instance_attribute(InstanceId=instance_id, Attribute='sourceDestCheck')[
        'SourceDestCheck'] == {'Value': False}
    assert error_code(ec2.modify_instance_attribute, InstanceId=instance_id,
                      InstanceInitiatedShutdownBehavior={'Value': 'hibernate'}) == 'InvalidParameterValue'
    assert error_code(ec2.modify_instance_attribute, InstanceId=instance_id,
                      Groups=['sg-0123456789abcdef0']) == 'InvalidGroup.NotFound'
    assert error_code(run, world, ec2, InstanceInitiatedShutdownBehavior='hibernate') == 'InvalidParameterValue'


def test_password_data_is_empty_for_linux_instances(world, ec2):
    (instance_id,) = run(world, ec2)
    answer = ec2.get_password_data(InstanceId=instance_id)
    assert answer['InstanceId'] == instance_id and answer['PasswordData'] == ''
    assert error_code(ec2.get_password_data, InstanceId='i-0123456789abcdef0') == 'InvalidInstanceID.NotFound'
    assert error_code(ec2.get_password_data, InstanceId='i-nope') == 'InvalidInstanceID.Malformed'
