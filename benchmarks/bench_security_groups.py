"""Security groups: how fast a rule change is enforced, and what one host's reconcile costs at scale.

    sudo python3 benchmarks/bench_security_groups.py [--rounds 20] [--instances 1000] [--groups 100]
                                                     [--rules 20] [--skip-vm]

1. Latency on running VMs. The sealed cloud of the VM tests (a network namespace of its own, the stock
   image) runs two guests, `a` and `c`. Each round authorizes TCP 22 from `a` into `c`'s group, then
   revokes it, and times from the API's answer until the kernel enforces the change: until the rule is
   in the installation's nftables chain (polled every 5 ms inside the cloud's namespace). For a few
   rounds it also times what the guests see: a connection loop in `a` (over SSH) until `c` answers
   (this includes up to 1 s of the loop's connect timeout).
2. Reconcile at scale, in-process. One simulated host carries N instances spread over G groups of R
   rules each (CIDR rules over port ranges, and rules naming other groups). It reports the seconds to
   read the policy from the database, to render the tables, to apply them whole to a real kernel (in a
   network namespace made for it) and, after one rule change and one membership change, to read,
   diff and apply only the difference.
"""
import argparse
import ipaddress
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def summary(values):
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f'median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms'


# -- 1. latency on running VMs -------------------------------------------------------------------------

def vm_latency(rounds):
    from tests.vm.conftest import (CONTEXTUALIZED, NetnsCloud, missing_requirement, security_group, ssh_arguments,
                                   tcp_in, wait_for_console, wait_for_states)
    from backend.networking.host_firewall import table_name
    reason = missing_requirement()
    if reason:
        raise SystemExit(f'cannot run real VMs here: {reason}')
    cloud = NetnsCloud()
    ec2 = None
    try:
        cloud.start()
        ec2 = cloud.client()
        subnet = ec2.describe_subnets(Filters=[{'Name': 'default-for-az', 'Values': ['true']}])['Subnets'][0]
        gateway = str(ipaddress.IPv4Network(subnet['CidrBlock'])[1])
        control = security_group(ec2, 'control', tcp_in(22, f'{gateway}/32'))
        web = security_group(ec2, 'web')
        pair = ec2.create_key_pair(KeyName='bench', KeyType='ed25519')
        key = cloud.home / 'bench.pem'
        key.write_text(pair['KeyMaterial'])
        key.chmod(0o600)
        guests = {}
        for name, groups in (('a', [control]), ('c', [control, web])):
            (guests[name],) = ec2.run_instances(ImageId=cloud.image_id, MinCount=1, MaxCount=1,
                                                InstanceType='t1.micro', KeyName='bench', SubnetId=subnet['SubnetId'],
                                                SecurityGroupIds=groups)['Instances']
        for guest in guests.values():
            wait_for_console(ec2, guest['InstanceId'], CONTEXTUALIZED, 'reservoir-context: ssh server started')
        table = table_name('reservoir', Path(cloud.env['RESERVOIR_HOME']).absolute())
        rule = tcp_in(22, f"{guests['a']['PrivateIpAddress']}/32")
        chain = ('nft', 'list', 'chain', 'inet', table, f'g-{web}-in')

        def enforced():
            return 'tcp dport 22' in cloud.inside(*chain).stdout

        opened, closed = [], []
        for _ in range(rounds):
            for call, latencies, wanted in ((ec2.authorize_security_group_ingress, opened, True),
                                            (ec2.revoke_security_group_ingress, closed, False)):
                call(GroupId=web, IpPermissions=[rule])
                started = time.monotonic()
                while enforced() != wanted:
                    if time.monotonic() - started > 30:
                        raise SystemExit('a rule change was not enforced within 30 s')
                    time.sleep(0.005)
                latencies.append(time.monotonic() - started)
        seen = guest_observed(cloud, ec2, guests, key, web, rule, ssh_arguments, subnet['VpcId'])
        print(f'rule change to kernel enforcement on a running VM, {rounds} rounds:')
        print(f'  authorize: {summary(opened)}')
        print(f'  revoke:    {summary(closed)}')
        print(f'  authorize to an answer seen from the other guest (3 rounds): {summary(seen)}')
        ids = [guest['InstanceId'] for guest in guests.values()]
        ec2.terminate_instances(InstanceIds=ids)
        wait_for_states(ec2, ids, {'terminated'})
    finally:
        cloud.close(ec2)


def guest_observed(cloud, ec2, guests, key, web, rule, ssh_arguments, vpc_id):
    target = guests['c']['PrivateIpAddress']
    probe = (f'for i in $(seq 1 200); do if echo | busybox nc -w 1 {target} 22 | grep -q SSH; then echo open; '
             f'exit 0; fi; sleep 0.05; done; echo closed')
    seen = []
    for _ in range(3):
        watcher = subprocess.Popen(cloud.vpc_command(vpc_id, *ssh_arguments(key, guests['a']['PrivateIpAddress']),
                                                     probe), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(3)
        started = time.monotonic()
        ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[rule])
        line = watcher.stdout.readline().strip()
        seen.append(time.monotonic() - started)
        watcher.kill()
        watcher.wait()
        ec2.revoke_security_group_ingress(GroupId=web, IpPermissions=[rule])
        if line != 'open':
            raise SystemExit('the guest never saw the port open')
        time.sleep(1)
    return seen


# -- 2. reconcile at scale -----------------------------------------------------------------------------

def reconcile_at_scale(instances, group_count, rules):
    from backend.cloud import Cloud
    from backend.config import load_config
    from backend.instances import LaunchRequest
    from backend.networking import nft_ruleset
    from backend.networking.host_firewall import KernelTables
    from backend.networking.security_groups import permission
    from backend.networking.security_policy import desired_policy
    from backend.worker import Worker
    home = Path(tempfile.mkdtemp(prefix='reservoir-bench-sg-'))
    cloud = Cloud.open(load_config({'RESERVOIR_HOME': str(home), 'RESERVOIR_QUOTAS_INSTANCES': '100000',
                                    'RESERVOIR_QUOTAS_VCPUS': '100000', 'RESERVOIR_SECURITY_GROUPS_RULES_PER_GROUP': '100',
                                    'RESERVOIR_SECURITY_GROUPS_SIMULATED_HOST_RULES': 'true'}))
    namespace = f'rsv-bench-sg-{home.name[-6:]}'.replace('_', '')
    try:
        owner = cloud.users.create('bench').account_id
        disk = home / 'tiny.qcow2'
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '16M'], check=True)
        image = cloud.images.register_file(disk, 'tiny', owner)
        cloud.hosts.add_simulated(1, cpus=100000, memory_mib=100_000_000)
        worker = Worker(cloud)
        worker.claim_hosts()
        groups = [cloud.security_groups.create(owner, f'g{n}', f'group {n}') for n in range(group_count)]
        for n, group_id in enumerate(groups):
            asked = []
            for r in range(rules):
                if r % 5 == 4:   # every fifth rule names another group
                    asked.append(permission('tcp', 1000 + r, 1000 + r, peer_group_id=groups[(n + r) % group_count]))
                else:
                    asked.append(permission('tcp', 1000 + r, 1100 + r, cidr=f'10.{n % 250}.{r}.0/24'))
            cloud.security_groups.authorize(owner, asked, False, group_id=group_id)
        per_group = max(1, instances // group_count)
        for n, group_id in enumerate(groups):
            cloud.instances.run(owner, LaunchRequest(image.image_id, per_group, per_group, 't1.micro',
                                                     security_group_ids=(group_id,)))
        worker.dispatch(wait=True)
        hosts = list(worker.owned_hosts())

        started = time.perf_counter()
        with cloud.db.read() as session:
            policy = desired_policy(session, hosts, worker.installation)
        read = time.perf_counter() - started
        started = time.perf_counter()
        tables = nft_ruleset.tables(policy, 'rsvbench', 'r000')
        render = time.perf_counter() - started
        script = ''.join(nft_ruleset.full_script(table) for table in tables)
        subprocess.run(['ip', 'netns', 'add', namespace], check=True)
        started = time.perf_counter()
        subprocess.run(['ip', 'netns', 'exec', namespace, 'nft', '-f', '-'], input=script, text=True, check=True)
        kernel_full = time.perf_counter() - started
        started = time.perf_counter()
        worker.firewall.reconcile(cloud.db, worker.owned_hosts(), generation='full')
        reconcile_full = time.perf_counter() - started
        kernel = KernelTables(('ip', 'netns', 'exec', namespace))
        started = time.perf_counter()
        intact = all(kernel.counts(table.family, table.name) == table.counts() for table in tables)
        verify = time.perf_counter() - started
        assert intact, 'the kernel holds other tables than were applied'

        changes = {}
        cloud.security_groups.authorize(owner, [permission('udp', 53, 53, cidr='0.0.0.0/0')], False, group_id=groups[0])
        changes['one rule added'] = measure_change(cloud, worker, hosts, tables, namespace)
        tables = changes['one rule added'][2]
        interface = cloud.interfaces.describe(owner, limit=1)[0]
        cloud.security_groups.set_interface_groups(owner, interface.interface_id, [groups[1]])
        changes['one membership moved'] = measure_change(cloud, worker, hosts, tables, namespace)

        print(f'\nreconcile of one host: {len(policy.ports)} instances, {len(policy.groups)} groups, {rules} rules each '
              f'({sum(len(g.ingress) + len(g.egress) for g in policy.groups)} merged permissions), '
              f'{sum(len(chain.rules) for table in tables for chain in table.chains.values())} nft rules')
        print(f'  read the policy from the database: {read * 1000:.0f} ms')
        print(f'  render both tables:                {render * 1000:.0f} ms')
        print(f'  apply them whole to the kernel:    {kernel_full * 1000:.0f} ms ({len(script) // 1024} KiB script)')
        print(f'  whole reconcile of the simulated host (read, render, write): {reconcile_full * 1000:.0f} ms')
        print(f'  compare the kernel tables with them (every 10 s): {verify * 1000:.0f} ms')
        for name, (seconds, kernel, _tables, lines) in changes.items():
            print(f'  {name}: read and diff {seconds * 1000:.0f} ms, kernel {kernel * 1000:.0f} ms ({lines} statements)')
    finally:
        subprocess.run(['ip', 'netns', 'del', namespace], capture_output=True)
        cloud.close()


def measure_change(cloud, worker, hosts, before, namespace):
    from backend.networking import nft_ruleset
    from backend.networking.security_policy import desired_policy
    started = time.perf_counter()
    with cloud.db.read() as session:
        policy = desired_policy(session, hosts, worker.installation)
    after = nft_ruleset.tables(policy, 'rsvbench', 'r000')
    script = ''.join(nft_ruleset.change_script(old, new) for old, new in zip(before, after))
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(['ip', 'netns', 'exec', namespace, 'nft', '-f', '-'], input=script, text=True, check=True)
    return seconds, time.perf_counter() - started, after, len(script.splitlines())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=20)
    parser.add_argument('--instances', type=int, default=1000)
    parser.add_argument('--groups', type=int, default=100)
    parser.add_argument('--rules', type=int, default=20)
    parser.add_argument('--skip-vm', action='store_true', help='only the reconcile at scale')
    args = parser.parse_args()
    if not args.skip_vm:
        vm_latency(args.rounds)
    reconcile_at_scale(args.instances, args.groups, args.rules)


if __name__ == '__main__':
    main()
