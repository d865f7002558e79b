"""The administrators' actions (ec2api/admin_model.json): the resource pool of every account.

Only users flagged as administrators reach these handlers; dispatch refuses everyone else before
any parameter is read. The back-end decides; these only translate its records to the model's names.
"""
from . import action

_DEFAULT_FAILURES = 50
_DEFAULT_BUCKET_SECONDS = 300


@action('DescribeCloudHosts')
def describe_cloud_hosts(ctx, args):
    hosts = ctx.cloud.pool.describe_hosts(args.get('HostNames') or ())
    return {'Hosts': [{
        'HostName': host.name, 'Zone': host.zone, 'DomainType': host.domain_type,
        'Uri': host.uri, 'Enabled': host.enabled, 'State': host.state,
        'StateReason': host.state_reason, 'Simulated': host.simulated, 'Standby': host.standby,
        'VcpuTotal': host.cpus, 'VcpuUsed': host.used_cpus, 'MemoryTotalMib': host.memory_mib,
        'MemoryUsedMib': host.used_memory_mib, 'InstanceCount': host.instances, 'LastSeen': host.last_seen,
    } for host in hosts]}


@action('DescribeCloudHostInstances')
def describe_cloud_host_instances(ctx, args):
    return {'Instances': [{
        'InstanceId': row.instance_id, 'OwnerId': row.owner, 'InstanceType': row.instance_type,
        'State': row.state, 'Vcpus': row.vcpus, 'MemoryMib': row.memory_mib,
    } for row in ctx.cloud.pool.host_instances(args['HostName'])]}


@action('DescribeCloudInstances')
def describe_cloud_instances(ctx, args):
    return {'Instances': [{
        'InstanceId': row.instance_id, 'OwnerId': row.owner, 'State': row.state, 'Zone': row.zone,
        'HostName': row.host_name, 'TargetHostName': row.target_host_name,
    } for row in ctx.cloud.pool.placements(args['InstanceIds'])]}


@action('ModifyCloudHost')
def modify_cloud_host(ctx, args):
    ctx.cloud.pool.set_host_enabled(args['HostName'], args['Enabled'])
    return {'Return': True}


@action('EvacuateCloudHost')
def evacuate_cloud_host(ctx, args):
    moves = ctx.cloud.pool.evacuate(args['HostName'], live=args.get('Live', True))
    return {'Moves': [{'InstanceId': move.instance_id, 'TargetHostName': move.target, 'Outcome': move.outcome}
                      for move in moves]}


@action('DescribeCloudNetworks')
def describe_cloud_networks(ctx, _args):
    return {'Networks': [{
        'Name': network.name, 'Kind': network.kind, 'Cidr': network.cidr, 'Gateway': network.gateway,
        'Bridge': network.bridge, 'VpcId': network.vpc_id, 'SubnetId': network.subnet_id, 'OwnerId': network.owner,
        'Zone': network.zone, 'LeasesUsed': network.leases_used, 'LeasesTotal': network.leases_total,
    } for network in ctx.cloud.pool.networks()]}


@action('DescribeCloudUsers')
def describe_cloud_users(ctx, _args):
    return {'Users': [{
        'UserName': user.name, 'AccountId': user.account_id, 'Admin': user.admin, 'CreatedAt': user.created_at,
        'Usage': [{'Resource': resource, 'Used': used, 'Limit': limit} for resource, used, limit in user.usage],
    } for user in ctx.cloud.pool.users()]}


@action('DescribePlacementFailures')
def describe_placement_failures(ctx, args):
    failures = ctx.cloud.placement_failures.recent(args.get('MaxResults', _DEFAULT_FAILURES))
    return {'Failures': [{
        'Time': failure.time, 'AccountId': failure.owner, 'InstanceType': failure.instance_type,
        'Count': failure.count, 'Zone': failure.zone, 'Reason': failure.reason,
        'HostReasons': [{'HostName': name, 'Reason': why} for name, why in failure.host_reasons.items()],
    } for failure in failures]}


@action('DescribeCapacityHistory')
def describe_capacity_history(ctx, args):
    samples = ctx.cloud.capacity_history.samples(args.get('HostName'), args.get('StartTime'), args.get('EndTime'))
    return {'Samples': [{
        'Time': sample.time, 'VcpuUsed': sample.vcpu_used, 'VcpuTotal': sample.vcpu_total,
        'MemoryUsedMib': sample.memory_used_mib, 'MemoryTotalMib': sample.memory_total_mib,
        'InstanceCount': sample.instance_count, 'HostCount': sample.host_count,
    } for sample in samples]}


@action('DescribeLaunchHistory')
def describe_launch_history(ctx, args):
    buckets = ctx.cloud.launch_history.buckets(args.get('BucketSeconds', _DEFAULT_BUCKET_SECONDS),
                                               args.get('StartTime'))
    return {'Buckets': [{
        'Time': bucket.time, 'Launched': bucket.launched, 'Failed': bucket.failed,
        'PlacementFailed': bucket.placement_failed, 'DeployFailed': bucket.deploy_failed,
    } for bucket in buckets]}
