"""The resource pool as administrators see it, across every account: hosts and the instances on
them, networks and their leases, users and what they use of their quotas.

Nothing here is reachable by a tenant: the front-end serves it only to users flagged as
administrators.
"""
import dataclasses
import datetime
import urllib.parse

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from . import quotas as quota_rules
from .errors import InvalidValue, NotFound
from .lifecycle import HOLDS_CAPACITY, HOLDS_TARGET_CAPACITY
from .models import (Address, Host as HostRow, Instance as InstanceRow, Lease, Network as NetworkRow, User as UserRow,
                     Vpc as VpcRow)
from .networking import addressing


# As many as one page of the console, or of DescribeInstances, shows at most.
MAX_PLACEMENT_IDS = 1000


@dataclasses.dataclass(frozen=True)
class HostInstance:
    instance_id: str
    owner: str
    instance_type: str
    state: str
    vcpus: int
    memory_mib: int


@dataclasses.dataclass(frozen=True)
class InstancePlacement:
    instance_id: str
    owner: str
    state: str
    zone: str
    host_name: str | None           # None before placement, on a peer cloud's behalf it is the peer
    target_host_name: str | None    # while it moves


@dataclasses.dataclass(frozen=True)
class NetworkUsage:
    name: str
    kind: str                  # 'private' (a subnet) or 'public' (the elastic IP pool)
    cidr: str
    gateway: str | None
    bridge: str | None
    vpc_id: str | None
    subnet_id: str | None
    owner: str | None
    zone: str | None
    leases_used: int
    leases_total: int


@dataclasses.dataclass(frozen=True)
class UserUsage:
    name: str
    account_id: str
    admin: bool
    created_at: datetime.datetime
    usage: tuple               # ((resource, used, limit), …) in quotas.RESOURCES order


class ResourcePool:
    def __init__(self, db, hosts, migrations, quota_defaults):
        self.db = db
        self.hosts = hosts                  # HostService
        self.migrations = migrations        # MigrationService
        self.quota_defaults = quota_defaults

    # -- hosts ---------------------------------------------------------------------------------------

    def describe_hosts(self, names=()):
        """Every host, or those named (InvalidHost.NotFound for a name no host has), its URI without
        secrets."""
        hosts = self.hosts.list()
        if names:
            known = {host.name for host in hosts}
            missing = [name for name in dict.fromkeys(names) if name not in known]
            if missing:
                raise _no_host(missing[0])
            hosts = [host for host in hosts if host.name in set(names)]
        return [dataclasses.replace(host, uri=public_uri(host.uri, host.domain_type)) for host in hosts]

    def host_instances(self, host_name):
        """The instances holding capacity on the host (moving ones on both hosts), of every account."""
        with self.db.read() as session:
            host_id = self._host_id(session, host_name)
            rows = session.execute(
                select(InstanceRow.instance_id, InstanceRow.owner, InstanceRow.instance_type, InstanceRow.state,
                       InstanceRow.vcpus, InstanceRow.memory_mib)
                .where(((InstanceRow.host_id == host_id) & InstanceRow.state.in_(_values(HOLDS_CAPACITY)))
                       | ((InstanceRow.migration_host_id == host_id)
                          & InstanceRow.state.in_(_values(HOLDS_TARGET_CAPACITY))))
                .order_by(InstanceRow.launch_time, InstanceRow.instance_id)).all()
        return [HostInstance(*row) for row in rows]

    def placements(self, instance_ids):
        """Where each named instance runs, of any account; ids no instance has are left out."""
        if len(instance_ids) > MAX_PLACEMENT_IDS:
            raise InvalidValue(f'At most {MAX_PLACEMENT_IDS} instance ids at a time')
        host, target = aliased(HostRow), aliased(HostRow)
        with self.db.read() as session:
            rows = session.execute(
                select(InstanceRow.instance_id, InstanceRow.owner, InstanceRow.state, InstanceRow.zone, host.name,
                       target.name)
                .outerjoin(host, host.id == InstanceRow.host_id)
                .outerjoin(target, target.id == InstanceRow.migration_host_id)
                .where(InstanceRow.instance_id.in_(list(dict.fromkeys(instance_ids))))
                .order_by(InstanceRow.instance_id)).all()
        return [InstancePlacement(*row) for row in rows]

    def set_host_enabled(self, host_name, enabled):
        with self.db.read() as session:
            self._host_id(session, host_name)
        return self.hosts.set_enabled(host_name, enabled)

    def evacuate(self, host_name, live=True):
        """Disable the host and start moving its running and stopped instances; the workers carry the
        moves out after this returns (Moves say where each goes, or why it stays)."""
        return self.migrations.evacuate(host_name, live=live)

    def _host_id(self, session, host_name):
        host_id = session.scalar(select(HostRow.id).where(HostRow.name == host_name))
        if host_id is None:
            raise _no_host(host_name)
        return host_id

    # -- networks and users --------------------------------------------------------------------------

    def networks(self):
        with self.db.read() as session:
            leases = dict(session.execute(select(Lease.network_id, func.count()).group_by(Lease.network_id)).all())
            addresses = session.scalar(select(func.count()).select_from(Address))
            rows = session.execute(select(NetworkRow, VpcRow.vpc_id).outerjoin(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
                                   .order_by(NetworkRow.id)).all()
        return [_network_usage(row, vpc_id, addresses if row.kind == 'public' else leases.get(row.id, 0))
                for row, vpc_id in rows]

    def users(self):
        with self.db.read() as session:
            users = session.scalars(select(UserRow).order_by(UserRow.name)).all()
            return [UserUsage(user.name, user.account_id, bool(user.admin), user.created_at,
                              self._usage(session, user.account_id)) for user in users]

    def _usage(self, session, owner):
        limits = quota_rules.effective(session, self.quota_defaults, owner)
        used = quota_rules.usage(session, owner, with_storage=True)
        return tuple((resource, used[resource], limits.get(resource)) for resource in quota_rules.RESOURCES)


def public_uri(uri, domain_type):
    """A host's URI without what may be secret: no password or query (a key file, say); for a peer
    cloud only its endpoint."""
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.hostname or ''
    if ':' in netloc:
        netloc = f'[{netloc}]'
    if parts.port:
        netloc += f':{parts.port}'
    if parts.username and domain_type != 'ec2':
        netloc = f'{parts.username}@{netloc}'
    scheme = parts.scheme.removeprefix('ec2+') if domain_type == 'ec2' else parts.scheme
    return f'{scheme}://{netloc}{parts.path}'


def _network_usage(row, vpc_id, used):
    first, last = addressing.usable_range(addressing.parse_network(row.cidr))
    return NetworkUsage(row.name, row.kind, row.cidr, row.gateway, row.bridge, vpc_id,
                        row.subnet_id if row.kind != 'public' else None, row.owner, row.zone, used, last - first + 1)


def _no_host(name):
    return NotFound('InvalidHost.NotFound', f"no host is named '{name}'")


def _values(states):
    return [state.value for state in states]
