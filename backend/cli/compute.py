"""`reservoir host|net|instance|worker`: the compute side of administration."""
import dataclasses
import signal
import sys
import threading
import time

from ..cloud import Cloud
from ..peers import is_peer_uri
from ..errors import InvalidValue
from ..lifecycle import MOVING_STATES, State
from .output import plain, print_json, print_table, timestamp


def add_commands(commands, json_flag):
    _host_commands(commands, json_flag)
    _network_commands(commands, json_flag)
    _instance_commands(commands, json_flag)
    worker = commands.add_parser('worker', help='run a worker process (deploys, stops, monitors hosts)')
    worker.set_defaults(command=worker_command)


# --- host -------------------------------------------------------------------------------------------

def _host_commands(commands, json_flag):
    host = commands.add_parser('host', help='manage hypervisor hosts')
    actions = host.add_subparsers(dest='action', required=True, metavar='ACTION')
    add = actions.add_parser('add', help='register a libvirt host or a peer EC2 cloud, or create simulated hosts')
    add.add_argument('uri', nargs='?', help='libvirt URI: qemu:///system, qemu+ssh://…, xen://…, test:///…; '
                                            'or a peer cloud: ec2+https://HOST[:PORT][/PATH]')
    add.add_argument('--simulated', action='store_true', help="create hosts on libvirt's test driver")
    add.add_argument('--count', type=int, default=1, help='how many simulated hosts (default 1)')
    add.add_argument('--name')
    add.add_argument('--cpus', type=int)
    add.add_argument('--memory', type=int, metavar='MiB')
    add.add_argument('--zone')
    add.add_argument('--domain-type', choices=('qemu', 'kvm', 'xen'))
    add.add_argument('--shared-storage', metavar='PATH',
                     help="where the host sees this server's state directory: its instances' disks are then "
                          'read there, not copied into a storage pool on the host')
    add.add_argument('--fence-command', metavar='COMMAND',
                     help='a shell command that powers the host off (exit status 0: it is off), run once it '
                          'has been unreachable for [compute] fence_after_seconds')
    peer = add.add_argument_group('a peer cloud (ec2+http/https URIs)')
    peer.add_argument('--region')
    peer.add_argument('--access-key')
    peer.add_argument('--secret-key')
    peer.add_argument('--signature', choices=('v4', 'v2'), default='v4')
    peer.add_argument('--capacity', action='append', default=[], metavar='TYPE=COUNT',
                      help='instances of a type the peer may run for this cloud (repeatable; default: '
                           "the peer's max-instances, as m1.small)")
    peer.add_argument('--placement', choices=('burst', 'zone'), default='burst',
                      help='burst: used once the local hosts are full (default); zone: only by launches that '
                           "ask for the peer's zone (--zone)")
    json_flag(add)
    add.set_defaults(command=host_add)
    add_local = actions.add_parser('add-local', help='register this machine (embedded QEMU driver) as host "local"')
    add_local.add_argument('--domain-type', choices=('auto', 'qemu', 'kvm'), default='auto',
                           help='auto: KVM if the stock kernel really boots under it, else QEMU (TCG)')
    add_local.add_argument('--cpus', type=int, help='vCPUs to offer (default: 4 per core)')
    add_local.add_argument('--memory', type=int, metavar='MiB', help="memory to offer (default: the machine's)")
    json_flag(add_local)
    add_local.set_defaults(command=host_add_local)
    listing = actions.add_parser('list', help='list hosts and their capacity')
    json_flag(listing)
    listing.set_defaults(command=host_list)
    for name, function, text in (('show', host_show, 'show one host'),
                                 ('disable', host_disable, 'place no new instances on a host'),
                                 ('enable', host_enable, 'place instances on a host again'),
                                 ('remove', host_remove, 'forget a host that runs no instances')):
        parser = actions.add_parser(name, help=text)
        parser.add_argument('name')
        json_flag(parser)
        parser.set_defaults(command=function)
    fence = actions.add_parser('set-fence', help="set the command that powers a host off ('' removes it)")
    fence.add_argument('name')
    fence.add_argument('fence_command', metavar='COMMAND')
    json_flag(fence)
    fence.set_defaults(command=host_set_fence)
    evacuate = actions.add_parser('evacuate',
                                  help='disable a host and move everything running or stopped on it elsewhere')
    evacuate.add_argument('name')
    _move_flags(evacuate)
    json_flag(evacuate)
    evacuate.set_defaults(command=host_evacuate)
    rebalance = actions.add_parser('rebalance', help="move instances toward a placement policy's target")
    rebalance.add_argument('--policy', choices=('packing', 'striping', 'load-aware'), default='packing')
    rebalance.add_argument('--dry-run', action='store_true', help='print the plan, move nothing')
    rebalance.add_argument('--max-moves', type=int, metavar='N')
    rebalance.add_argument('--parallel', type=int, default=4, metavar='N', help='moves at a time (default 4)')
    rebalance.add_argument('--standby', action='store_true',
                           help='put hosts that packing emptied on standby (out of placement until enabled)')
    rebalance.add_argument('--cold', action='store_true', help='save and restore instead of live migration')
    json_flag(rebalance)
    rebalance.set_defaults(command=host_rebalance)


def host_add(args):
    with Cloud.open() as cloud:
        if args.simulated:
            if args.cpus is None or args.memory is None:
                raise InvalidValue('simulated hosts need --cpus and --memory')
            if args.count < 1:
                raise InvalidValue('--count must be at least 1')
            hosts = cloud.hosts.add_simulated(args.count, args.cpus, args.memory, zone=args.zone)
        elif args.uri and is_peer_uri(args.uri):
            hosts = [cloud.peers.add(args.uri, args.name or _peer_name(args.uri), args.region, args.access_key,
                                     args.secret_key, args.signature, _capacity(args.capacity), zone=args.zone,
                                     placement=args.placement)]
        elif args.uri:
            hosts = [cloud.hosts.add(args.uri, name=args.name, cpus=args.cpus, memory_mib=args.memory,
                                     zone=args.zone, domain_type=args.domain_type,
                                     shared_storage=args.shared_storage)]
        else:
            raise InvalidValue('give a libvirt URI, or --simulated')
        if args.fence_command:
            for host in hosts:
                cloud.fencing.set_command(host.name, args.fence_command)
    _print_hosts(hosts, args.json)


def host_set_fence(args):
    with Cloud.open() as cloud:
        cloud.fencing.set_command(args.name, args.fence_command)
        _print_hosts([cloud.hosts.get(args.name)], args.json)


def _capacity(pairs):
    capacity = {}
    for pair in pairs:
        instance_type, _, count = pair.partition('=')
        if not count.isdigit():
            raise InvalidValue(f'--capacity takes TYPE=COUNT, not {pair!r}')
        capacity[instance_type] = int(count)
    return capacity


def _peer_name(uri):
    return uri.split('://', 1)[1].split('/', 1)[0].replace(':', '-')


def host_add_local(args):
    from ..local_host import add_local_host
    with Cloud.open() as cloud:
        host, probe = add_local_host(cloud, args.domain_type, cpus=args.cpus, memory_mib=args.memory)
    if not args.json:
        print(f'Domain type {probe.domain_type}: {probe.reason}.')
    _print_hosts([host], args.json)


def host_list(args):
    with Cloud.open() as cloud:
        _print_hosts(cloud.hosts.list(), args.json)


def host_show(args):
    with Cloud.open() as cloud:
        _print_hosts([cloud.hosts.get(args.name)], args.json)


def host_disable(args):
    with Cloud.open() as cloud:
        _print_hosts([cloud.hosts.set_enabled(args.name, False)], args.json)


def host_enable(args):
    with Cloud.open() as cloud:
        _print_hosts([cloud.hosts.set_enabled(args.name, True)], args.json)


def host_evacuate(args):
    with Cloud.open() as cloud:
        moves = cloud.migrations.evacuate(args.name, live=not args.cold)
        moves = _wait_for_moves(cloud, moves, args)
    _print_moves(moves, args.json)
    return 0 if all(move.outcome in ('moved', 'moving') for move in moves) else 1


def host_rebalance(args):
    from ..compute.rebalancing import Rebalancer
    if args.parallel < 1:
        raise InvalidValue('--parallel must be at least 1')
    with Cloud.open() as cloud:
        rebalancer = Rebalancer(cloud.db, cloud.migrations)
        started = time.perf_counter()
        planned = rebalancer.plan(args.policy, args.max_moves)
        planning = time.perf_counter() - started
        if args.dry_run:
            if args.json:
                print_json({'policy': args.policy, 'planning_seconds': round(planning, 4),
                            'moves': [dataclasses.asdict(move) for move in planned]})
            else:
                print_table(('INSTANCE', 'FROM', 'TO'), [(m.instance_id, m.source, m.target) for m in planned])
                print(f'{len(planned)} move(s) planned in {planning:.3f} s', file=sys.stderr)
            return 0
        print(f'{len(planned)} move(s) planned in {planning:.3f} s', file=sys.stderr)
        done = []
        outcomes = rebalancer.carry_out(planned, parallel=args.parallel, live=not args.cold,
                                        report=lambda move: _progress(done, move, len(planned)))
        emptied = sorted({m.source for m in planned} - {m.source for m in outcomes if m.outcome != 'moved'})
        if args.standby and args.policy == 'packing':
            rebalancer.standby(emptied)
    if args.json:
        print_json({'policy': args.policy, 'planning_seconds': round(planning, 4), 'emptied': emptied,
                    'standby': emptied if args.standby and args.policy == 'packing' else [],
                    'moves': [move.as_json() for move in outcomes]})
    else:
        _print_moves(outcomes, False)
    return 0 if all(move.outcome == 'moved' for move in outcomes) else 1


def _progress(done, move, total):
    done.append(move)
    print(f'[{len(done)}/{total}] {move.instance_id} {move.source} -> {move.target}: {move.outcome}',
          file=sys.stderr, flush=True)


def _move_flags(parser):
    parser.add_argument('--cold', action='store_true', help='save and restore instead of live migration')
    parser.add_argument('--no-wait', action='store_true', help='return once the moves have begun')


def _wait_for_moves(cloud, moves, args, timeout=600):
    """The moves as they ended (or as they began, with --no-wait)."""
    moving = {move.instance_id: move for move in moves if move.outcome == 'moving'}
    if args.no_wait or not moving:
        return moves
    deadline = time.monotonic() + timeout
    ended = {}
    while moving and time.monotonic() < deadline:
        for instance_id, (state, host_name, reason) in cloud.migrations.progress(list(moving)).items():
            if State(state) not in MOVING_STATES:
                move = moving.pop(instance_id)
                ended[instance_id] = dataclasses.replace(
                    move, outcome='moved' if host_name == move.target else (reason or f'{state} on {host_name}'))
        time.sleep(0.1)
    return [ended.get(move.instance_id, move) for move in moves]


def _print_moves(moves, as_json):
    if as_json:
        print_json([move.as_json() for move in moves])
        return
    print_table(('INSTANCE', 'FROM', 'TO', 'HOW', 'OUTCOME'),
                [(m.instance_id, m.source, m.target or '-', 'live' if m.live else 'cold', m.outcome) for m in moves])


def host_remove(args):
    with Cloud.open() as cloud:
        cloud.hosts.remove(args.name)
    if args.json:
        print_json({'removed': args.name})
    else:
        print(f"Removed host '{args.name}'.")


def _print_hosts(hosts, as_json):
    if as_json:
        print_json([host.as_json() for host in hosts])
        return
    print_table(('NAME', 'URI', 'ZONE', 'STATE', 'ENABLED', 'VCPU USED/TOTAL', 'MEMORY MiB USED/TOTAL', 'INSTANCES'),
                [(h.name, h.uri, h.zone, h.state, 'standby' if h.standby else 'yes' if h.enabled else 'no',
                  f'{h.used_cpus}/{h.cpus}',
                  f'{h.used_memory_mib}/{h.memory_mib}', h.instances) for h in hosts])


# --- net --------------------------------------------------------------------------------------------

def _network_commands(commands, json_flag):
    net = commands.add_parser('net', help='manage virtual networks')
    actions = net.add_subparsers(dest='action', required=True, metavar='ACTION')
    create = actions.add_parser('create', help='create a virtual network (an EC2 subnet)')
    create.add_argument('name')
    create.add_argument('cidr', help='e.g. 10.1.0.0/20')
    create.add_argument('--gateway')
    create.add_argument('--dns', help='comma-separated name servers')
    create.add_argument('--bridge', help='host bridge the network lives on')
    create.add_argument('--vlan', type=int)
    json_flag(create)
    create.set_defaults(command=net_create)
    listing = actions.add_parser('list', help='list networks and their leases')
    json_flag(listing)
    listing.set_defaults(command=net_list)
    show = actions.add_parser('show', help='show one network')
    show.add_argument('name')
    json_flag(show)
    show.set_defaults(command=net_show)


def net_create(args):
    with Cloud.open() as cloud:
        network = cloud.networks.create(args.name, args.cidr, gateway=args.gateway, dns=args.dns,
                                        bridge=args.bridge, vlan=args.vlan)
    _print_networks([network], args.json)


def net_list(args):
    with Cloud.open() as cloud:
        _print_networks(cloud.networks.list(), args.json)


def net_show(args):
    with Cloud.open() as cloud:
        _print_networks([cloud.networks.get(args.name)], args.json)


def _print_networks(networks, as_json):
    if as_json:
        print_json([network.as_json() for network in networks])
        return
    print_table(('NAME', 'SUBNET', 'KIND', 'CIDR', 'GATEWAY', 'BRIDGE', 'VLAN', 'LEASED'),
                [(n.name, n.subnet_id, n.kind, n.cidr, n.gateway or '-', n.bridge or '-', n.vlan or '-',
                  f'{n.leased}/{n.size}') for n in networks])


# --- instance ---------------------------------------------------------------------------------------

def _instance_commands(commands, json_flag):
    instance = commands.add_parser('instance', help='look at instances of every account')
    actions = instance.add_subparsers(dest='action', required=True, metavar='ACTION')
    listing = actions.add_parser('list', help='list instances')
    listing.add_argument('--owner', metavar='ACCOUNT_ID')
    json_flag(listing)
    listing.set_defaults(command=instance_list)
    migrate = actions.add_parser('migrate', help='move running or stopped instances to another host')
    migrate.add_argument('instance_ids', nargs='+', metavar='ID')
    migrate.add_argument('--host', metavar='NAME', help="the target (default: the scheduler's choice)")
    migrate.add_argument('--live', action='store_true', help='keep the guest running while it moves (the default)')
    _move_flags(migrate)
    json_flag(migrate)
    migrate.set_defaults(command=instance_migrate)


def instance_list(args):
    with Cloud.open() as cloud:
        instances = cloud.instances.describe(args.owner)
    if args.json:
        print_json([plain(instance) for instance in instances])
        return
    print_table(('INSTANCE', 'OWNER', 'STATE', 'TYPE', 'HOST', 'PRIVATE IP', 'PUBLIC IP', 'LAUNCHED', 'REASON'),
                [(i.instance_id, i.owner, i.state, i.instance_type, i.host_name or '-', i.private_ip or '-',
                  i.public_ip or '-', timestamp(i.launch_time), i.state_reason_message or '')
                 for i in instances])


def instance_migrate(args):
    with Cloud.open() as cloud:
        moves = cloud.migrations.migrate(args.instance_ids, host_name=args.host, live=not args.cold)
        moves = _wait_for_moves(cloud, moves, args)
    _print_moves(moves, args.json)
    return 0 if all(move.outcome in ('moved', 'moving') for move in moves) else 1


# --- worker -----------------------------------------------------------------------------------------

def worker_command(_args):
    """A worker process on its own: for scale-out next to API processes that run without one."""
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    with Cloud.open() as cloud:
        worker = cloud.start_worker()
        print(f'worker {worker.worker_id} running', flush=True)
        stop.wait()
    return 0
