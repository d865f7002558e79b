"""The administrators' API through boto3 (the admin model served to botocore as `reservoir-admin`)
against a live server on simulated hosts: what administrators see spans every account and moves as
users launch; disabling and evacuating hosts steer the scheduler; users get UnauthorizedOperation for
every admin action, change nothing by trying, and see none of it through EC2's actions."""
import datetime

import botocore.exceptions
import pytest

from ec2api.service_model import admin_model
from tests.support.server import simulated_cloud
from tests.support.waiting import wait_for

FAST = {'Delay': 1, 'MaxAttempts': 60}
# Valid parameters for every admin action, so a refusal can only be the caller's.
VALID = {
    'DescribeCloudHosts': {'HostNames': ['sim-00001']},
    'DescribeCloudHostInstances': {'HostName': 'sim-00001'},
    'DescribeCloudInstances': {'InstanceIds': ['i-0123456789abcdef0']},
    'ModifyCloudHost': {'HostName': 'sim-00001', 'Enabled': False},
    'EvacuateCloudHost': {'HostName': 'sim-00001', 'Live': True},
    'DescribeCloudNetworks': {},
    'DescribeCloudUsers': {},
    'DescribePlacementFailures': {'MaxResults': 5},
    'DescribeCapacityHistory': {'HostName': 'sim-00001'},
    'DescribeLaunchHistory': {'BucketSeconds': 60},
}


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    live = simulated_cloud(tmp_path_factory.mktemp('admin-api'), ('alice', 'bob'), hosts=2, cpus=8, memory_mib=8192,
                           start=False, extra_env={'RESERVOIR_MONITOR_SAMPLE_INTERVAL_SECONDS': '1'})
    live.create_user('root', admin=True)
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope='module')
def admin(site):
    return site.admin_client('root')


def launch(site, user, count, instance_type='t1.micro'):
    ec2 = site.client(user)
    ids = [i['InstanceId'] for i in ec2.run_instances(ImageId=site.image_id, MinCount=count, MaxCount=count,
                                                      InstanceType=instance_type)['Instances']]
    ec2.get_waiter('instance_running').wait(InstanceIds=ids, WaiterConfig=FAST)
    return ids


def terminate(site, user, ids):
    ec2 = site.client(user)
    ec2.terminate_instances(InstanceIds=ids)
    ec2.get_waiter('instance_terminated').wait(InstanceIds=ids, WaiterConfig=FAST)


def hosts(admin):
    return {host['HostName']: host for host in admin.describe_cloud_hosts()['Hosts']}


def on_host(admin, name):
    return {row['InstanceId']: row for row in admin.describe_cloud_host_instances(HostName=name)['Instances']}


def test_admins_see_capacity_rise_across_accounts(site, admin):
    before = sum(host['VcpuUsed'] for host in hosts(admin).values())
    alice_ids, bob_ids = launch(site, 'alice', 2), launch(site, 'bob', 1, 'm1.small')
    listed = hosts(admin)
    assert sum(host['VcpuUsed'] for host in listed.values()) == before + 3
    assert all(host['State'] == 'ok' and host['Enabled'] and host['VcpuTotal'] == 8 and host['Uri'].startswith('test://')
               for host in listed.values())
    seen = {**on_host(admin, 'sim-00001'), **on_host(admin, 'sim-00002')}
    owners = {site.users[name]['account_id']: name for name in ('alice', 'bob')}
    assert {owners[seen[i]['OwnerId']] for i in alice_ids + bob_ids} == {'alice', 'bob'}
    assert seen[bob_ids[0]]['InstanceType'] == 'm1.small' and seen[bob_ids[0]]['Vcpus'] == 1
    # Where instances of any account run, by id: the console's host column for administrators.
    placed = {row['InstanceId']: row for row in admin.describe_cloud_instances(
        InstanceIds=[*alice_ids, *bob_ids, 'i-0000000000000000f'])['Instances']}
    assert sorted(placed) == sorted(alice_ids + bob_ids)
    assert {i: row['HostName'] for i, row in placed.items()} == {
        i: name for name in ('sim-00001', 'sim-00002') for i in on_host(admin, name) if i in placed}
    assert {row['OwnerId'] for row in placed.values()} == set(owners)
    users = {user['UserName']: user for user in admin.describe_cloud_users()['Users']}
    assert (users['root']['Admin'], users['alice']['Admin']) == (True, False)
    usage = {row['Resource']: row for row in users['alice']['Usage']}
    assert usage['instances']['Used'] >= 2 and usage['instances']['Limit'] == 100000
    networks = admin.describe_cloud_networks()['Networks']
    assert sum(n['LeasesUsed'] for n in networks if n.get('OwnerId') in owners) >= 3
    assert all(n['LeasesTotal'] > 0 for n in networks)
    # The monitor samples every second here: the cloud's totals catch up with the launches.
    wait_for(lambda: (admin.describe_capacity_history()['Samples'] or [{}])[-1].get('VcpuUsed') == before + 3, 30)
    (latest,) = admin.describe_capacity_history(
        StartTime=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1.5))['Samples'][-1:]
    assert latest['VcpuTotal'] == 16 and latest['HostCount'] == 2
    assert admin.describe_capacity_history(HostName='sim-00002')['Samples'][-1]['VcpuTotal'] == 8
    assert admin.describe_launch_history(BucketSeconds=60)['Buckets'][-1]['Launched'] >= 0
    assert sum(b['Launched'] for b in admin.describe_launch_history(BucketSeconds=60)['Buckets']) >= 3
    terminate(site, 'alice', alice_ids)
    terminate(site, 'bob', bob_ids)


def test_a_disabled_host_is_avoided_until_enabled(site, admin):
    assert admin.modify_cloud_host(HostName='sim-00001', Enabled=False)['Return'] is True
    try:
        assert hosts(admin)['sim-00001']['Enabled'] is False
        ids = launch(site, 'alice', 4)
        assert set(ids) <= set(on_host(admin, 'sim-00002')) and not set(ids) & set(on_host(admin, 'sim-00001'))
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            launch(site, 'alice', 5)                  # 4 of sim-00002's 8 vCPUs are left
        assert refused.value.response['Error']['Code'] == 'InsufficientInstanceCapacity'
        failure = admin.describe_placement_failures(MaxResults=1)['Failures'][0]
        assert (failure['AccountId'], failure['InstanceType'], failure['Count']) == (
            site.users['alice']['account_id'], 't1.micro', 5)
        assert {r['HostName']: r['Reason'] for r in failure['HostReasons']}['sim-00001'] == 'disabled'
        assert admin.describe_launch_history(BucketSeconds=60)['Buckets'][-1]['Failed'] >= 5
    finally:
        admin.modify_cloud_host(HostName='sim-00001', Enabled=True)
    more = launch(site, 'alice', 1)
    assert set(more) <= set(on_host(admin, 'sim-00001'))      # striping: the emptier host again
    terminate(site, 'alice', ids + more)


def test_evacuation_answers_at_once_and_the_moves_go_on(site, admin):
    ids = launch(site, 'bob', 2)
    source = next(name for name in ('sim-00001', 'sim-00002') if set(on_host(admin, name)) & set(ids))
    target = 'sim-00002' if source == 'sim-00001' else 'sim-00001'
    staying = set(on_host(admin, source)) & set(ids)
    try:
        moves = admin.evacuate_cloud_host(HostName=source)['Moves']
        assert {m['InstanceId']: (m['TargetHostName'], m['Outcome']) for m in moves} == {
            i: (target, 'moving') for i in staying}
        assert hosts(admin)[source]['Enabled'] is False
        wait_for(lambda: not on_host(admin, source), 60)
        assert set(ids) <= set(on_host(admin, target))
        ec2 = site.client('bob')
        wait_for(lambda: {i['State']['Name'] for r in ec2.describe_instances(InstanceIds=ids)['Reservations']
                          for i in r['Instances']} == {'running'})
    finally:
        admin.modify_cloud_host(HostName=source, Enabled=True)
    terminate(site, 'bob', ids)


def test_bad_admin_requests_are_ec2_errors(site):
    lax = site.admin_client('root', parameter_validation=False)
    for call, params, code in (
            (lax.describe_cloud_host_instances, {'HostName': 'no-such-host'}, 'InvalidHost.NotFound'),
            (lax.modify_cloud_host, {'HostName': 'no-such-host', 'Enabled': True}, 'InvalidHost.NotFound'),
            (lax.evacuate_cloud_host, {'HostName': 'no-such-host'}, 'InvalidHost.NotFound'),
            (lax.describe_cloud_hosts, {'HostNames': ['sim-00001', 'nope']}, 'InvalidHost.NotFound'),
            (lax.describe_capacity_history, {'HostName': 'nope'}, 'InvalidHost.NotFound'),
            (lax.modify_cloud_host, {'HostName': 'sim-00001'}, 'MissingParameter'),
            (lax.describe_cloud_host_instances, {}, 'MissingParameter'),
            (lax.describe_placement_failures, {'MaxResults': 0}, 'InvalidParameterValue'),
            (lax.describe_launch_history, {'BucketSeconds': 1}, 'InvalidParameterValue'),
            (lax.describe_capacity_history, {'StartTime': datetime.datetime(2030, 1, 1),
                                             'EndTime': datetime.datetime(2029, 1, 1)}, 'InvalidParameterValue')):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            call(**params)
        assert refused.value.response['Error']['Code'] == code, (call, params)
        assert refused.value.response['ResponseMetadata']['HTTPStatusCode'] == 400
    assert hosts(site.admin_client('root'))['sim-00001']['Enabled'] is True


def test_users_are_refused_every_admin_action_and_change_nothing(site, admin):
    ids = launch(site, 'alice', 2)
    before_hosts, before_instances = hosts(admin), {**on_host(admin, 'sim-00001'), **on_host(admin, 'sim-00002')}
    assert sorted(VALID) == sorted(admin_model().operation_names)
    for user in ('alice', 'bob'):
        client = site.admin_client(user)
        for action, params in VALID.items():
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                getattr(client, _method(action))(**params)
            assert refused.value.response['Error'] == {
                'Code': 'UnauthorizedOperation', 'Message': 'You are not authorized to perform this operation.'}
            assert refused.value.response['ResponseMetadata']['HTTPStatusCode'] == 403
    assert {name: host['Enabled'] for name, host in hosts(admin).items()} == {
        name: host['Enabled'] for name, host in before_hosts.items()}
    assert {**on_host(admin, 'sim-00001'), **on_host(admin, 'sim-00002')} == before_instances
    terminate(site, 'alice', ids)


def test_what_admins_see_stays_out_of_users_ec2_answers(site, admin):
    ids = launch(site, 'bob', 1)
    ec2 = site.client('alice')
    answers = []
    for method in ('describe_instances', 'describe_availability_zones', 'describe_regions', 'describe_subnets',
                   'describe_account_attributes', 'describe_images', 'describe_vpcs'):
        operation = getattr(ec2, method)
        answers.append(repr(operation()))
    text = ''.join(answers)
    for secret in ('sim-00001', 'sim-00002', site.users['bob']['account_id'], ids[0], 'simulated', 'test://'):
        assert secret not in text
    terminate(site, 'bob', ids)


def _method(action):
    from botocore import xform_name
    return xform_name(action)


@pytest.mark.postgres
def test_the_admin_history_on_postgres(pg_home):
    from backend.errors import CapacityError
    from backend.instances import LaunchRequest
    from tests.support.postgres import open_cloud, prepare
    owner, image_id = prepare(pg_home, hosts=2, cpus=4, memory=2048)
    with open_cloud(pg_home) as cloud:
        cloud.users.set_admin('alice', True)
        cloud.instances.run(owner, LaunchRequest(image_id, 3, 3, 't1.micro'))
        with pytest.raises(CapacityError):
            cloud.instances.run(owner, LaunchRequest(image_id, 9, 9, 't1.micro'))
        assert cloud.capacity_history.sample([host.host_id for host in cloud.hosts.list()]) == 2
        (total,) = cloud.capacity_history.samples()
        assert (total.vcpu_used, total.vcpu_total, total.instance_count, total.host_count) == (3, 8, 3, 2)
        (failure,) = cloud.placement_failures.recent()
        assert failure.count == 9 and set(failure.host_reasons) == {'sim-00001', 'sim-00002'}
        latest = cloud.launch_history.buckets(60)[-1]
        assert (latest.launched, latest.failed) == (3, 9)
        (user,) = cloud.pool.users()
        assert user.admin and dict((r, used) for r, used, _limit in user.usage)['instances'] == 3
        assert cloud.users.secret_for(cloud.users.get('alice').access_key_ids[0]).admin is True
