"""The host registry: hypervisors by libvirt URI, simulated hosts, and their capacity bookkeeping.

Capacity lives in the database (allocated against total vCPUs and memory), because libvirt's test
driver does no accounting and real hosts are shared by several processes.
"""
import dataclasses
import datetime
import re

from sqlalchemy import and_, func, or_, select, update

from .drivers import features_of, open_driver
from .drivers.base import DriverError, Feature
from .errors import BackendError, Conflict, InvalidValue, NotFound
from .lifecycle import HOLDS_CAPACITY, MOVING_STATES
from . import scheduler
from .models import Host as HostRow, Instance as InstanceRow, Peer

_HOST_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,63}')
DOMAIN_TYPES = ('qemu', 'kvm', 'xen', 'test', 'ec2')     # ec2: a peer cloud (peers)


@dataclasses.dataclass(frozen=True)
class Host:
    host_id: int
    name: str
    uri: str
    zone: str
    cpus: int
    memory_mib: int
    used_cpus: int
    used_memory_mib: int
    enabled: bool
    state: str
    state_reason: str | None
    domain_type: str
    simulated: bool
    instances: int
    last_seen: datetime.datetime | None
    standby: bool = False
    shared_storage: str | None = None    # where the host sees this machine's state directory
    fence_command: str | None = None     # what powers it off once it has been unreachable long enough

    def as_json(self):
        record = dataclasses.asdict(self)
        record['last_seen'] = self.last_seen.isoformat() if self.last_seen else None
        return record


class HostService:
    def __init__(self, db, config):
        self.db = db
        self.config = config

    def add(self, uri, name=None, cpus=None, memory_mib=None, zone=None, domain_type=None, shared_storage=None):
        """Register a libvirt host; capacity is asked of the host unless given. `shared_storage`: the
        absolute path where the host sees this machine's state directory (its disks are then this
        machine's files, never copied to it)."""
        name = name or _name_from_uri(uri)
        zone = self._check_zone(zone)
        if shared_storage is not None and not shared_storage.startswith('/'):
            raise InvalidValue('--shared-storage takes the absolute path where the host sees the state directory')
        if cpus is None or memory_mib is None:
            reported_cpus, reported_memory = _ask_capacity(uri)
            cpus = cpus if cpus is not None else reported_cpus
            memory_mib = memory_mib if memory_mib is not None else reported_memory
        return self._insert(name, uri, zone, cpus, memory_mib, domain_type or _domain_type(uri),
                            simulated=uri.startswith('test://'), shared_storage=shared_storage)

    def shared_storage(self, host_id):
        """Where the host sees this machine's state directory, or None (its disks are copied to it)."""
        with self.db.read() as session:
            return session.scalar(select(HostRow.shared_storage).where(HostRow.id == host_id))

    def console_output(self, host_name, instance_id, files, names):
        """The console of an instance on a libvirt host whose disks are in its own storage pool,
        asked of the host; None when the console is this machine's file (or a peer's)."""
        with self.db.read() as session:
            row = session.execute(select(HostRow.uri, HostRow.shared_storage, HostRow.domain_type)
                                  .where(HostRow.name == host_name)).one_or_none()
        if row is None or row.domain_type == 'ec2':
            return None
        driver = open_driver(row.uri, files, names=names, shared_storage=row.shared_storage)
        try:
            if driver.storage.shared:
                return None
            return driver.console_output(instance_id)
        except DriverError:
            return b''
        finally:
            driver.close()

    def add_simulated(self, count, cpus, memory_mib, zone=None, prefix='sim'):
        """Create `count` simulated hosts on libvirt's test driver, each its own in-memory node."""
        zone = self._check_zone(zone)
        directory = self.config.home / 'simulated'
        directory.mkdir(parents=True, exist_ok=True)
        first = self._next_simulated_index(prefix)
        rows = []
        for index in range(first, first + count):
            name = f'{prefix}-{index:05d}'
            node = directory / f'{name}.xml'
            node.write_text(_test_node_xml(cpus, memory_mib))
            rows.append(dict(name=name, uri=f'test://{node}', zone=zone, cpus=cpus, memory_mib=memory_mib,
                             domain_type='test', simulated=True))
        with self.db.write() as session:
            session.execute(HostRow.__table__.insert(), [_defaults(row) for row in rows])
        return [self.get(row['name']) for row in rows]

    def list(self):
        with self.db.read() as session:
            counts = dict(session.execute(
                select(InstanceRow.host_id, func.count()).where(InstanceRow.state.in_(_holding()))
                .group_by(InstanceRow.host_id)).all())
            return [_record(row, counts.get(row.id, 0))
                    for row in session.scalars(select(HostRow).order_by(HostRow.id))]

    def get(self, name):
        with self.db.read() as session:
            row = _find(session, name)
            count = session.scalar(select(func.count()).select_from(InstanceRow)
                                   .where(InstanceRow.host_id == row.id, InstanceRow.state.in_(_holding())))
            return _record(row, count)

    def set_enabled(self, name, enabled):
        """Enable or disable a host; enabling also ends a standby."""
        with self.db.write() as session:
            host = _find(session, name)
            host.enabled = enabled
            if enabled:
                host.standby = False
        return self.get(name)

    def remove(self, name):
        with self.db.write() as session:
            row = _find(session, name)
            moving = InstanceRow.state.in_([state.value for state in MOVING_STATES])
            busy = session.scalar(select(func.count()).select_from(InstanceRow).where(or_(
                and_(InstanceRow.host_id == row.id, or_(InstanceRow.state.in_(_holding()), moving)),
                and_(InstanceRow.migration_host_id == row.id, moving))))
            if busy:
                raise Conflict('HostInUse', f"Host '{name}' still has {busy} instance(s); terminate or "
                                            'move them first.')
            session.execute(update(InstanceRow).where(InstanceRow.host_id == row.id).values(host_id=None))
            session.delete(row)

    def _insert(self, name, uri, zone, cpus, memory_mib, domain_type, simulated, shared_storage=None):
        if not _HOST_NAME.fullmatch(name):
            raise InvalidValue(f"'{name}' is not a valid host name")
        if domain_type not in DOMAIN_TYPES:
            raise InvalidValue(f"domain type must be one of {', '.join(DOMAIN_TYPES)}")
        if cpus < 1 or memory_mib < 64:
            raise InvalidValue('a host needs at least 1 CPU and 64 MiB of memory')
        with self.db.write() as session:
            if session.scalar(select(HostRow.id).where(HostRow.name == name)) is not None:
                raise Conflict('HostExists', f"A host named '{name}' is already registered")
            session.add(HostRow(**_defaults(dict(name=name, uri=uri, zone=zone, cpus=cpus,
                                                 memory_mib=memory_mib, domain_type=domain_type,
                                                 simulated=simulated, shared_storage=shared_storage))))
        return self.get(name)

    def _check_zone(self, zone):
        zone = zone or self.config.zones[0]
        if zone not in self.config.zones:
            raise InvalidValue(f"unknown zone '{zone}'; zones: {', '.join(self.config.zones)}")
        return zone

    def _next_simulated_index(self, prefix):
        with self.db.read() as session:
            names = session.scalars(select(HostRow.name).where(HostRow.name.like(f'{prefix}-%'))).all()
        numbers = [int(name.rsplit('-', 1)[1]) for name in names if name.rsplit('-', 1)[1].isdigit()]
        return max(numbers, default=0) + 1


def host_views(session):
    """What the scheduler sees of every host: capacity, state, and whether it is a peer cloud."""
    rows = session.execute(select(HostRow.id, HostRow.name, HostRow.zone, HostRow.cpus, HostRow.memory_mib,
                                  HostRow.used_cpus, HostRow.used_memory_mib, HostRow.enabled,
                                  HostRow.state, HostRow.load, HostRow.domain_type, Peer.placement)
                           .outerjoin(Peer, Peer.host_id == HostRow.id).order_by(HostRow.id)).all()
    return [scheduler.HostView(row.id, row.name, row.zone, row.cpus, row.memory_mib, row.used_cpus,
                               row.used_memory_mib, row.enabled, row.state == 'ok', row.load,
                               peer=row.domain_type == 'ec2', zone_only=row.placement == 'zone',
                               domain_type=row.domain_type)
            for row in rows]


def require_feature(session, instance, feature, doing):
    """Refuse, before anything is recorded, what the host of `instance` cannot do (`doing`: 'take
    elastic IPs', say): a peer cloud's instances have no interfaces, volumes or disks here."""
    if instance.host_id is None:
        return
    domain_type = session.scalar(select(HostRow.domain_type).where(HostRow.id == instance.host_id))
    if Feature(feature) not in features_of(domain_type):
        where = 'a peer cloud' if domain_type == 'ec2' else 'a host'
        raise BackendError('UnsupportedOperation', f"The instance '{instance.instance_id}' runs on {where} "
                                                   f'that cannot {doing}.')


def _holding():
    return [state.value for state in HOLDS_CAPACITY]


def _defaults(row):
    row.setdefault('used_cpus', 0)
    row.setdefault('used_memory_mib', 0)
    row.setdefault('enabled', True)
    row.setdefault('state', 'ok')
    row.setdefault('load', 0.0)
    row.setdefault('created_at', datetime.datetime.now(datetime.timezone.utc))
    return row


def _find(session, name):
    row = session.scalar(select(HostRow).where(HostRow.name == name))
    if row is None:
        raise NotFound('InvalidHostID.NotFound', f"The host '{name}' does not exist")
    return row


def _record(row, instances):
    return Host(row.id, row.name, row.uri, row.zone, row.cpus, row.memory_mib, row.used_cpus,
                row.used_memory_mib, row.enabled, row.state, row.state_reason, row.domain_type,
                row.simulated, instances, row.last_seen, row.standby, row.shared_storage, row.fence_command)


def _name_from_uri(uri):
    tail = re.sub(r'^[a-z+]+://', '', uri).strip('/') or 'localhost'
    return re.sub(r'[^A-Za-z0-9._-]+', '-', tail)[:64].strip('-') or 'host'


def _domain_type(uri):
    scheme = uri.split(':', 1)[0]
    if scheme.startswith('xen'):
        return 'xen'
    if scheme.startswith('test'):
        return 'test'
    return 'qemu'


def _ask_capacity(uri):
    try:
        host = open_driver(uri, files=None)
    except DriverError as error:
        raise InvalidValue(str(error)) from None
    try:
        return host.capacity()
    except DriverError as error:
        raise InvalidValue(f'cannot ask the host for its capacity ({error}); give --cpus and --memory')
    finally:
        host.close()


def _test_node_xml(cpus, memory_mib):
    return (f'<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads>'
            f'<mhz>2000</mhz><model>x86_64</model></cpu><memory>{memory_mib * 1024}</memory></node>\n')
