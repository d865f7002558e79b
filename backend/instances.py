"""Instances: launch (placement, leases and capacity in one transaction), describe, and lifecycle
requests. The work itself (deploying, stopping, destroying) is done by the workers, off the
request path; this module only records what must happen, through the lifecycle table.
"""
import collections
import dataclasses
import datetime
import functools
import hashlib
import json
import re

from sqlalchemy import bindparam, exists, false, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import launch_history, scheduler
from .db import Prepared
from .errors import CapacityError, Conflict, InvalidValue, NotFound
from .compute import move_targets
from .hosts import host_views
from .images import IMAGE_ID, visible_to
from .tags import check_tags
from .matching import wildcard
from .networking.addresses import assign_public_ips, release_public_ips
from .networking.interfaces import new_interface_row, release_interfaces
from .storage.volumes import release_volumes
from .storage.ebs_images import block_devices_of
from .storage.launch_volumes import ROOT_DEVICES
from .networking.security_groups import groups_for, join_groups
from .quotas import Quotas, check_more_instances, instances_allowed, lock_account
from .lifecycle import FINAL_STATES, HOLDS_CAPACITY, MOVING_STATES, Event, State, ec2_state, next_state, shares
from .models import (ClientToken, Host as HostRow, Image as ImageRow, Instance as InstanceRow,
                     KeyPair as KeyPairRow, Lease, Network as NetworkRow, NetworkInterface as InterfaceRow, PeerImage,
                     PlacementGroup,
                     Tag, Volume as VolumeRow, Vpc as VpcRow, new_resource_id, utcnow)

INSTANCE_ID = re.compile(r'i-[0-9a-f]{8}(?:[0-9a-f]{9})?')
DEDICATED_HOST_ID = re.compile(r'h-[0-9a-f]{8}(?:[0-9a-f]{9})?')
MAX_USER_DATA_BYTES = 16 * 1024
CAPACITY_RACE_RETRIES = 5
MAX_ID_SLOTS = 512   # ids bound in one statement: SQLite allows 999 parameters at most
SHUTDOWN_BEHAVIORS = ('stop', 'terminate')
EC2_STATE_NAMES = ('pending', 'running', 'shutting-down', 'terminated', 'stopping', 'stopped')


@dataclasses.dataclass(frozen=True)
class LaunchRequest:
    image_id: str
    min_count: int
    max_count: int
    instance_type: str
    key_name: str | None = None
    user_data: str | None = None          # base64, as sent
    zone: str | None = None
    host_name: str | None = None          # pin to a host: administrators only, never from the API
    dedicated_host_id: str | None = None  # Placement.HostId: an EC2 dedicated host of the account
    group_name: str | None = None         # Placement.GroupName
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    subnet_id: str | None = None
    private_ip: str | None = None         # PrivateIpAddress: this address in the subnet, for one instance
    # More interfaces for each instance: ((device index, subnet id, private ip or None, (group id, …)), …)
    extra_interfaces: tuple = ()
    tags: tuple = ()                      # ((key, value), …) for each instance
    interface_tags: tuple = ()            # ((key, value), …) for each interface the launch makes
    associate_public_ip: bool | None = None   # eth0's AssociatePublicIpAddress; None: the subnet decides
    security_group_ids: tuple = ()        # eth0's groups (SecurityGroupId.N or its Groups), by id …
    security_group_names: tuple = ()      # … or by name (SecurityGroup.N); none: the VPC's default group
    disable_api_termination: bool = False
    disable_api_stop: bool = False
    shutdown_behavior: str = 'stop'       # InstanceInitiatedShutdownBehavior: 'stop' or 'terminate'
    block_devices: tuple = ()             # (storage.launch_volumes.BlockDevice, …) over the image's
    client_token: str | None = None

    def fingerprint(self):
        """What must match for a repeated ClientToken to mean the same request."""
        fields = dataclasses.asdict(self)
        fields.pop('client_token')
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    reservation_id: str
    owner: str
    image_id: str
    kernel_id: str | None
    ramdisk_id: str | None
    instance_type: str
    vcpus: int
    memory_mib: int
    key_name: str | None
    state: str
    state_reason_code: str | None
    state_reason_message: str | None
    transition_reason: str | None
    host_name: str | None
    zone: str
    subnet_id: str | None
    vpc_id: str | None
    private_ip: str | None
    mac: str | None
    public_ip: str | None
    placement_group: str | None
    ami_launch_index: int
    client_token: str | None
    launch_time: datetime.datetime
    state_changed_at: datetime.datetime
    terminated_at: datetime.datetime | None
    tags: dict
    disable_api_termination: bool = False
    disable_api_stop: bool = False
    shutdown_behavior: str = 'stop'

    @property
    def ec2_state(self):
        return ec2_state(self.state)


@dataclasses.dataclass(frozen=True)
class StateChange:
    instance_id: str
    previous_state: str
    current_state: str


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One filter: a field of the instance and the values it may take (EC2 wildcards allowed)."""
    field: str
    values: tuple


# A criterion no instance meets (a filter on a constant attribute that the constant fails).
MATCH_NOTHING = Criterion('nothing', ())


class _CapacityRace(Exception):
    """Another launch took the capacity we counted on: place again."""


class _AlreadyLaunched(Exception):
    """A concurrent request with the same ClientToken launched first: its instances are the answer."""

    def __init__(self, instances):
        super().__init__()
        self.instances = instances


class InstanceService:
    def __init__(self, db, config, networks, vpcs, wake_workers=None, policy='striping',
                 terminated_retention=datetime.timedelta(hours=1), max_launch=1000, quotas=None, volumes=None,
                 failures=None):
        self.db = db
        self.failures = failures          # placement_failures.PlacementFailures: refusals kept for administrators
        self.volumes = volumes            # storage.volumes.VolumeService: the volumes a launch makes
        self.quotas = quotas or Quotas()
        self.config = config
        self.networks = networks
        self.vpcs = vpcs
        self.wake_workers = wake_workers or (lambda: None)
        self.policy = policy
        self.terminated_retention = terminated_retention
        self.max_launch = max_launch

    # -- launching -----------------------------------------------------------------------------------

    def run(self, owner, request):
        """RunInstances: place MinCount..MaxCount instances now, or refuse with reasons."""
        kind = self._check_request(owner, request)
        if request.client_token:
            earlier = self._earlier_launch(owner, request)
            if earlier is not None:
                return earlier
        try:
            instance_ids = self._launch_placed(owner, request, kind)
        except _AlreadyLaunched as earlier:
            return earlier.instances
        except CapacityError as refusal:
            self._keep_refusal(owner, [(kind.name, request.zone, request.min_count)], refusal)
            raise
        self.volumes.make_launch_files(instance_ids)     # before any worker may deploy them
        self.wake_workers()
        return self.describe(owner, ids=instance_ids, check_ids=False)

    def _launch_placed(self, owner, request, kind):
        """The launched instances' ids, placing again when a concurrent launch took the room."""
        for _attempt in range(CAPACITY_RACE_RETRIES):
            try:
                return self._launch(owner, request, kind)
            except _CapacityRace:
                continue
            except IntegrityError:
                # A concurrent retry with the same ClientToken committed first: this launch was
                # rolled back whole, and the caller gets that reservation, as AWS answers retries.
                earlier = self._earlier_launch(owner, request) if request.client_token else None
                if earlier is None:
                    raise
                raise _AlreadyLaunched(earlier) from None
        raise CapacityError('InsufficientInstanceCapacity', 'Capacity is being taken by other launches; try again.')

    def _check_request(self, owner, request):
        if request.min_count < 1 or request.max_count < request.min_count:
            raise InvalidValue('MinCount must be at least 1 and no more than MaxCount')
        if request.max_count > self.max_launch:
            raise InvalidValue(f'MaxCount may be at most {self.max_launch}', code='InstanceLimitExceeded')
        if (request.private_ip is not None or any(ip for _, _, ip, _ in request.extra_interfaces)) \
                and request.max_count > 1:
            raise InvalidValue('A private IP address can be given for one instance only',
                               code='InvalidParameterCombination')
        if request.shutdown_behavior not in SHUTDOWN_BEHAVIORS:
            raise InvalidValue(f"Value ({request.shutdown_behavior}) for parameter instanceInitiatedShutdownBehavior "
                               'is invalid.')
        if request.dedicated_host_id is not None:
            _refuse_dedicated_host(request.dedicated_host_id)
        kind = self.config.instance_types.get(request.instance_type)
        if kind is None:
            raise InvalidValue(f"The instance type '{request.instance_type}' does not exist",
                               code='InvalidInstanceType')
        if request.user_data is not None and len(request.user_data) > MAX_USER_DATA_BYTES * 4 // 3 + 4:
            raise InvalidValue('User data is limited to 16384 bytes')
        check_tags(request.tags)
        check_tags(request.interface_tags)
        if request.zone and request.zone not in self.config.zones:
            raise InvalidValue(f"Invalid availability zone: [{request.zone}]", code='InvalidParameterValue')
        with self.db.read() as session:
            image = _launchable_image(session, owner, request.image_id, 'machine', 'InvalidAMIID')
            for companion, image_type in ((request.kernel_id or image.kernel_id, 'kernel'),
                                          (request.ramdisk_id or image.ramdisk_id, 'ramdisk')):
                if companion:
                    _launchable_image(session, owner, companion, image_type, 'InvalidAMIID')
            if request.key_name and session.scalar(select(KeyPairRow.key_pair_id).where(
                    KeyPairRow.owner == owner, KeyPairRow.name == request.key_name)) is None:
                raise NotFound('InvalidKeyPair.NotFound', f"The key pair '{request.key_name}' does not exist")
        return kind

    def _earlier_launch(self, owner, request):
        with self.db.read() as session:
            token = session.scalar(select(ClientToken).where(ClientToken.owner == owner,
                                                             ClientToken.token == request.client_token))
            if token is None:
                return None
            if token.request_hash != request.fingerprint():
                raise Conflict('IdempotentParameterMismatch',
                               'The client token was already used with different parameters.')
            ids = session.scalars(select(InstanceRow.instance_id)
                                  .where(InstanceRow.reservation_id == token.reservation_id)
                                  .order_by(InstanceRow.ami_launch_index)).all()
        return self.describe(owner, ids=ids, check_ids=False)

    def _launch(self, owner, request, kind):
        default_vpc = None
        if not request.subnet_id:
            # Made in a transaction of its own on the account's first launch.
            default_vpc = self.vpcs.default_vpc(owner)
            if default_vpc is None:
                raise InvalidValue('No default VPC for this user. Name a subnet.', code='VPCIdNotSpecified')
        with self.db.write() as session:
            image = session.get(ImageRow, request.image_id)
            group = _placement_group(session, owner, request.group_name)
            lock_account(session, owner)
            allowed = instances_allowed(session, self.quotas, owner, request.max_count, request.min_count, kind.vcpus)
            hosts = host_views(session)
            zones = {host.host_id: host.zone for host in hosts}
            wanted = scheduler.Request(
                min_count=request.min_count, max_count=allowed, vcpus=kind.vcpus,
                memory_mib=kind.memory_mib, zone=self._launch_zone(session, owner, request),
                host_id=_host_id(hosts, request.host_name), group_strategy=group.strategy if group else None,
                group_hosts=_group_hosts(session, owner, group),
                refused=_peers_refused(session, hosts, request, image))
            placement = scheduler.place(hosts, wanted, self.policy)
            placed_zones = collections.Counter(zones[host_id] for host_id in placement.host_ids)
            if len(placed_zones) > 1:
                # One launch, one subnet, one zone: the zone where most of them fit.
                zone = placed_zones.most_common(1)[0][0]
                placement = scheduler.place(hosts, dataclasses.replace(wanted, zone=zone), self.policy)
            _reserve_capacity(session, placement.host_ids, kind)
            reservation_id = new_resource_id('r')
            instance_ids = [new_resource_id('i') for _ in placement.host_ids]
            zone = zones[placement.host_ids[0]]
            # Instances placed on a peer cloud take the peer's addresses, not a lease here (#948).
            peers = {host.host_id for host in hosts if host.peer}
            local_ids = [instance_id for instance_id, host_id in zip(instance_ids, placement.host_ids)
                         if host_id not in peers]
            plan = self._plan_network(session, owner, request, local_ids, zone, default_vpc) if local_ids else None
            leases = plan.leases if plan else {}
            now = utcnow()
            session.execute(InstanceRow.__table__.insert(), [
                _new_instance(owner, request, kind, image, reservation_id, instance_id, index, host_id,
                              zones[host_id], plan.network.id if instance_id in leases else None,
                              leases.get(instance_id), group, now)
                for index, (instance_id, host_id) in enumerate(zip(instance_ids, placement.host_ids))])
            if plan:
                plan.write(session, owner, request.interface_tags)
                image_devices = block_devices_of(session, [image.image_id]).get(image.image_id, [])
                self.volumes.add_launch_volumes(session, owner, image_devices, request.block_devices,
                                                image.root_device_name, image.root_device_type == 'ebs', local_ids,
                                                zone)
                assign_public_ips(session, local_ids)
            if request.tags:
                session.execute(Tag.__table__.insert(), [
                    {'resource_id': instance_id, 'key': key, 'value': value, 'owner': owner,
                     'resource_type': 'instance'} for instance_id in instance_ids for key, value in request.tags])
            if request.client_token:
                session.add(ClientToken(owner=owner, token=request.client_token,
                                        request_hash=request.fingerprint(), reservation_id=reservation_id))
            launch_history.record(session, owner, launch_history.LAUNCHED, len(instance_ids))
        return instance_ids

    def _plan_network(self, session, owner, request, instance_ids, zone, default_vpc):
        """Lease every interface the launch asks for and choose each one's groups: the rows to write
        once the instances are."""
        network = self._launch_subnet(session, owner, request, zone, default_vpc)
        interface_ids = [new_resource_id('eni') for _ in instance_ids]
        leases, lease_rows = self.networks.lease(session, network, interface_ids, request.private_ip)
        now = utcnow()
        interface_rows = [new_interface_row(owner, network.id, lease, instance_id, 0, now, delete_on_termination=True)
                          for instance_id, lease in zip(instance_ids, leases)]
        wants_public_ip = network.map_public_ip if request.associate_public_ip is None else request.associate_public_ip
        for row in interface_rows:
            row['wants_public_ip'] = bool(wants_public_ip)
        eth0_groups = groups_for(session, owner, network.vpc_pk, request.security_group_ids,
                                 request.security_group_names, self.config.security_groups.groups_per_interface)
        memberships = [{'interface_id': row['interface_id'], 'group_id': group_id} for row in interface_rows
                       for group_id in eth0_groups]
        for device_index, subnet_id, private_ip, group_ids in request.extra_interfaces:
            extra_network = self._extra_subnet(session, owner, subnet_id, network, zone)
            extra_ids = [new_resource_id('eni') for _ in instance_ids]
            extra_leases, extra_lease_rows = self.networks.lease(session, extra_network, extra_ids, private_ip)
            extra_rows = [new_interface_row(owner, extra_network.id, lease, instance_id, device_index, now,
                                            delete_on_termination=True)
                          for instance_id, lease in zip(instance_ids, extra_leases)]
            interface_rows += extra_rows
            extra_groups = groups_for(session, owner, extra_network.vpc_pk, group_ids,
                                      limit=self.config.security_groups.groups_per_interface)
            memberships += [{'interface_id': row['interface_id'], 'group_id': group_id} for row in extra_rows
                            for group_id in extra_groups]
            lease_rows += extra_lease_rows
        return _NetworkPlan(network, dict(zip(instance_ids, leases)), interface_rows, lease_rows, memberships)

    def _launch_zone(self, session, owner, request):
        """The zone a launch must land in: the one asked for, or its subnet's."""
        if not request.subnet_id:
            return request.zone
        subnet_zone = self.networks.zone_of(session, owner, request.subnet_id)
        if subnet_zone and request.zone and request.zone != subnet_zone:
            raise InvalidValue(f"The subnet '{request.subnet_id}' is in {subnet_zone}, not in {request.zone}.",
                               code='InvalidParameterCombination')
        return subnet_zone or request.zone

    def _launch_subnet(self, session, owner, request, zone, default_vpc):
        """The subnet to lease from, locked: the one named, else the default VPC's in the zone placed in."""
        if request.subnet_id:
            return self.networks.for_launch(session, owner, request.subnet_id)
        subnet = self.networks.default_subnet(session, default_vpc.vpc_id, zone)
        if subnet is None:
            raise InvalidValue(f'The default VPC has no default subnet in {zone}. Name a subnet.',
                               code='VPCIdNotSpecified')
        return subnet

    def _extra_subnet(self, session, owner, subnet_id, primary, zone):
        """The subnet of a launch's further interface, locked: in the primary's VPC and zone."""
        network = self.networks.for_launch(session, owner, subnet_id)
        if network.vpc_pk != primary.vpc_pk:
            raise InvalidValue('The network interfaces of an instance must all be in one VPC.',
                               code='InvalidParameterCombination')
        if network.zone and network.zone != zone:
            raise InvalidValue(f"The subnet '{subnet_id}' is not in {zone}, where the instance is.",
                               code='InvalidParameterCombination')
        return network

    # -- describing ----------------------------------------------------------------------------------

    def describe(self, owner, ids=None, criteria=(), after=None, limit=None, check_ids=True):
        """Instances of `owner` (None: every account), ordered by id, one page if `limit` is given.

        Returns the list, and the caller learns whether more follow from `describe_page`.
        """
        page, _ = self.describe_page(owner, ids, criteria, after, limit, check_ids)
        return page

    def describe_page(self, owner, ids=None, criteria=(), after=None, limit=None, check_ids=True):
        """(instances, more) where `more` tells whether another page follows."""
        if ids:
            _check_ids(ids)
        if not criteria and not (ids and (after or limit is not None)):
            return self._plain_page(owner, ids, after, limit, check_ids)
        sql_criteria, python_tests = _split_criteria(criteria)
        query = _listing(_still_visible(self._visibility_horizon()), *sql_criteria)
        if owner is not None:
            query = query.where(InstanceRow.owner == owner)
        if ids:
            query = query.where(InstanceRow.instance_id.in_(list(ids)))
        with self.db.query() as session:
            records, more = _fetch_page(session, query, python_tests, after, limit)
            if ids and check_ids:
                # Existence is judged before filtering: a filtered-out instance still exists.
                filtered = sql_criteria or python_tests or after or limit is not None
                found = self._visible_ids(session, owner, ids) if filtered else [r.instance_id for r in records]
                _check_all_found(ids, found)
        return records, more

    def _plain_page(self, owner, ids, after, limit, check_ids):
        """The unfiltered listing or lookup by ids, which clients poll: prepared statements."""
        ids = list(dict.fromkeys(ids or ()))
        statement = _plain_listing(owner is not None, _slots(len(ids)) if ids else 0,
                                   after is not None, limit is not None)
        values = {'owner': owner, 'horizon': self._visibility_horizon(), 'after': after,
                  'limit': None if limit is None else limit + 1, **_slot_values('id', ids)}
        with self.db.prepared() as read:
            rows = read(statement, **values)
            tags = _prepared_tags(read, [row.instance_id for row in rows])
        records = [_record(row, tags.get(row.instance_id, {})) for row in rows]
        if ids and check_ids:
            _check_all_found(ids, [record.instance_id for record in records])
        return _cut_page(records, limit)

    def _visible_ids(self, session, owner, ids):
        query = select(InstanceRow.instance_id).where(InstanceRow.instance_id.in_(list(ids)),
                                                      _still_visible(self._visibility_horizon()))
        if owner is not None:
            query = query.where(InstanceRow.owner == owner)
        return session.execute(query).scalars().all()

    def _visibility_horizon(self):
        """Instances terminated before this moment are no longer listed."""
        return utcnow() - self.terminated_retention

    # -- lifecycle requests --------------------------------------------------------------------------

    def terminate(self, owner, ids):
        return self._request(owner, ids, Event.TERMINATE)

    def stop(self, owner, ids, force=False):
        return self._request(owner, ids, Event.STOP, force=force)

    def reboot(self, owner, ids):
        self._request(owner, ids, Event.REBOOT)

    def start(self, owner, ids):
        try:
            return self._request(owner, ids, Event.START)
        except CapacityError as refusal:
            self._keep_refusal(owner, self._stopped_by_kind(owner, ids), refusal)
            raise

    def _keep_refusal(self, owner, groups, refusal):
        """A launch or start refused for want of room, kept for administrators: one failure per
        (instance type, zone, count) group."""
        if self.failures is None or refusal.code != 'InsufficientInstanceCapacity':
            return
        for instance_type, zone, count in groups:
            self.failures.record(owner, instance_type, count, zone, refusal)

    def _stopped_by_kind(self, owner, ids):
        """(instance type, zone, count) of the named stopped instances: what a refused start asked for."""
        with self.db.read() as session:
            counts = collections.Counter((row.instance_type, row.zone) for row in _owned_rows(session, owner, ids).values()
                                         if row.state == State.STOPPED)
        return [(instance_type, zone, count) for (instance_type, zone), count in sorted(counts.items())]

    def _request(self, owner, ids, event, force=False):
        _check_ids(ids)
        with self.db.write() as session:
            rows = _owned_rows(session, owner, ids)
            for row in rows.values():   # all or nothing: refuse before changing any
                next_state(row.state, event)
                _check_protection(row, event)
            elsewhere = {}
            if event is Event.START:
                stopped = [row for row in rows.values() if row.state in (State.STOPPED, State.RELOCATING)]
                self._check_start_quota(session, owner, stopped)
                elsewhere = self._start_elsewhere(session, [row for row in stopped if row.state == State.STOPPED])
            changes = []
            for instance_id in dict.fromkeys(ids):
                row = rows[instance_id]
                previous = row.state
                if instance_id in elsewhere:
                    _move_to_start(session, row, elsewhere[instance_id])
                else:
                    transition(session, row, event, transition_reason=_user_reason(event))
                if event is Event.STOP and row.state == State.STOPPING:
                    row.stop_forced = row.stop_forced or force
                changes.append(StateChange(instance_id, previous, row.state))
        self.wake_workers()
        return changes

    def _start_elsewhere(self, session, stopped):
        """{instance_id: host id} of the stopped instances whose host is disabled, fenced or
        unreachable: each starts on another host of its kind and zone with room for it, once its
        disks are there (InsufficientInstanceCapacity, changing nothing, when there is none)."""
        views = host_views(session)
        by_id = {view.host_id: view for view in views}
        return {row.instance_id: move_targets.place(views, by_id[row.host_id], row, self.policy)
                for row in stopped if row.host_id in by_id and not move_targets.can_run(by_id[row.host_id])}

    def _check_start_quota(self, session, owner, stopped):
        """Starting takes instance and vCPU quota again, as it takes capacity again."""
        if not stopped:
            return
        lock_account(session, owner)
        check_more_instances(session, self.quotas, owner, len(stopped), sum(row.vcpus for row in stopped))

    # -- attributes ----------------------------------------------------------------------------------

    def user_data(self, owner, instance_id):
        with self.db.read() as session:
            return _owned_rows(session, owner, [instance_id])[instance_id].user_data

    def modify(self, owner, instance_id, instance_type=None, user_data=None, disable_api_termination=None,
               disable_api_stop=None, shutdown_behavior=None):
        """ModifyInstanceAttribute: type and user data change only while stopped, as in EC2; the
        protections and the shutdown behaviour at any time."""
        if shutdown_behavior is not None and shutdown_behavior not in SHUTDOWN_BEHAVIORS:
            raise InvalidValue(f"Value ({shutdown_behavior}) for parameter instanceInitiatedShutdownBehavior is "
                               'invalid.', code='InvalidParameterValue')
        with self.db.write() as session:
            row = _owned_rows(session, owner, [instance_id])[instance_id]
            if ec2_state(row.state)[0] == 'terminated':
                raise Conflict('IncorrectInstanceState', f"The instance '{instance_id}' is terminated.")
            for column, value in (('disable_api_termination', disable_api_termination),
                                  ('disable_api_stop', disable_api_stop), ('shutdown_behavior', shutdown_behavior)):
                if value is not None:
                    setattr(row, column, value)
            if (instance_type is not None or user_data is not None) and row.state != State.STOPPED:
                raise Conflict('IncorrectInstanceState',
                               f"The instance '{instance_id}' is not in the 'stopped' state.")
            if instance_type is not None:
                kind = self.config.instance_types.get(instance_type)
                if kind is None:
                    raise InvalidValue(f"The instance type '{instance_type}' does not exist",
                                       code='InvalidInstanceAttributeValue')
                row.instance_type, row.vcpus, row.memory_mib = kind.name, kind.vcpus, kind.memory_mib
            if user_data is not None:
                row.user_data = user_data

    def purge_terminated(self):
        """Forget instances terminated longer ago than the retention: they are no longer shown."""
        horizon = utcnow() - self.terminated_retention
        with self.db.write() as session:
            old = session.scalars(select(InstanceRow.instance_id).where(
                InstanceRow.terminated_at.is_not(None), InstanceRow.terminated_at <= horizon)).all()
            if old:
                session.execute(Tag.__table__.delete().where(Tag.resource_id.in_(old)))
                session.execute(InstanceRow.__table__.delete().where(InstanceRow.instance_id.in_(old)))
        return len(old)


def _check_protection(row, event):
    """TerminateInstances and StopInstances refuse an instance protected against them."""
    for guarded, flag, attribute, verb in ((Event.TERMINATE, row.disable_api_termination, 'disableApiTermination',
                                            'terminated'),
                                           (Event.STOP, row.disable_api_stop, 'disableApiStop', 'stopped')):
        if event is guarded and flag:
            raise Conflict('OperationNotPermitted', f"The instance '{row.instance_id}' may not be {verb}. Modify its "
                                                    f"'{attribute}' instance attribute and try again.")


# -- transitions: the one place where state, capacity, leases and addresses change together --------

def transition(session, row, event, reason=None, reason_code=None, transition_reason=None):
    """Apply a lifecycle event to an instance row: take or free its host capacity as the states say,
    and release what a final state no longer holds.

    `reason_code`/`reason` become EC2's stateReason; `transition_reason` its stateTransitionReason.
    Both are cleared when the instance is (again) pending or running.
    """
    previous = State(row.state)
    target = next_state(previous, event)
    _follow_capacity(session, row, previous, target, Event(event) is Event.MIGRATED)
    if target in (State.STOPPED, *FINAL_STATES) and previous not in (State.STOPPED, *FINAL_STATES):
        release_public_ips(session, row.instance_id)     # as on AWS: a new one at the next start
    if previous in (State.STOPPED, State.MOVING_TO_START) and target is State.PENDING:
        assign_public_ips(session, [row.instance_id])
    if target is State.FAILED and previous is not State.FAILED:
        launch_history.record(session, row.owner, launch_history.DEPLOY_FAILED, 1)
    if target in FINAL_STATES and previous not in FINAL_STATES:
        release_interfaces(session, row.instance_id)
        release_volumes(session, row.instance_id)
        row.public_ip = None
        row.terminated_at = utcnow()
    if target != previous:
        row.state = target.value
        row.state_changed_at = utcnow()
    if target in (State.RUNNING, State.PENDING):
        row.state_reason_code = row.state_reason_message = row.transition_reason = None
    if reason_code is not None:
        row.state_reason_code, row.state_reason_message = reason_code, reason
    if transition_reason is not None:
        row.transition_reason = transition_reason
    if target is State.PENDING:
        row.attempts, row.next_attempt_at = 0, None
    if target is not State.STOPPING:
        row.stop_forced = False
    return target


def _free_capacity(session, host_id, row):
    session.execute(update(HostRow).where(HostRow.id == host_id).values(
        used_cpus=HostRow.used_cpus - row.vcpus, used_memory_mib=HostRow.used_memory_mib - row.memory_mib))


def rehome(session, row, host_id):
    """Give the instance's host share to `host_id` (an instance recovered on another host): taken
    there by a conditional update (CapacityError when it has no room), then freed where it was."""
    _reserve_capacity(session, [host_id], row, message_host=True)
    _free_capacity(session, row.host_id, row)
    row.host_id = host_id


def _move_to_start(session, row, host_id):
    """Start a stopped instance on `host_id`, holding its room there, after the worker of its host
    moved its disks (`moving-to-start`)."""
    row.migration_host_id, row.migration_live = host_id, False
    transition(session, row, Event.START_ELSEWHERE, reason_code='Server.Migrating',
               reason='Server.Migrating: its host cannot run it now; it starts on another host once its '
                      'disks are there')


def _follow_capacity(session, row, previous, target, moved):
    """Take and free host shares as the states say: what `target` holds (on the host the instance
    has after this transition, and on the one it moves to) less what `previous` held. Taken first,
    by conditional updates, so a refusal changes nothing."""
    host_id, moving_to = row.host_id, row.migration_host_id
    if moved:
        host_id, moving_to = moving_to, None        # a move ended: its new host is its host
    elif target not in MOVING_STATES:
        moving_to = None
    before = shares(previous, row.host_id, row.migration_host_id)
    after = shares(target, host_id, moving_to)
    taken = [host for host, count in after.items() for _ in range(count - before.get(host, 0))]
    if taken:
        _reserve_capacity(session, taken, row, message_host=True)
    for host, count in before.items():
        for _ in range(count - after.get(host, 0)):
            _free_capacity(session, host, row)
    if moved:
        row.nic_generation += 1
    row.host_id, row.migration_host_id = host_id, moving_to
    if moving_to is None:
        row.migration_live = False


def _user_reason(event):
    moment = utcnow().strftime('%Y-%m-%d %H:%M:%S GMT')
    return {Event.STOP: f'User initiated ({moment})', Event.TERMINATE: f'User initiated ({moment})',
            Event.START: None, Event.REBOOT: None}.get(event)


# -- helpers -----------------------------------------------------------------------------------------

def _check_ids(ids):
    malformed = [instance_id for instance_id in ids if not INSTANCE_ID.fullmatch(instance_id or '')]
    if malformed:
        raise InvalidValue(f"Invalid id: \"{malformed[0]}\"", code='InvalidInstanceID.Malformed')


def _owned_rows(session, owner, ids):
    rows = {row.instance_id: row for row in session.scalars(
        select(InstanceRow).where(InstanceRow.instance_id.in_(list(ids)), InstanceRow.owner == owner))}
    missing = [instance_id for instance_id in dict.fromkeys(ids) if instance_id not in rows]
    if missing:
        raise _not_found(missing)
    return rows


def _not_found(missing):
    plural = 's' if len(missing) > 1 else ''
    names = ', '.join(missing)
    verb = 'do' if len(missing) > 1 else 'does'
    return NotFound('InvalidInstanceID.NotFound', f"The instance ID{plural} '{names}' {verb} not exist")


def _check_all_found(ids, found_ids):
    found = set(found_ids)
    missing = [instance_id for instance_id in dict.fromkeys(ids) if instance_id not in found]
    if missing:
        raise _not_found(missing)


def _launchable_image(session, owner, image_id, image_type, code_prefix):
    if not IMAGE_ID.fullmatch(image_id or ''):
        raise InvalidValue(f"Invalid id: \"{image_id}\"", code=f'{code_prefix}.Malformed')
    image = session.scalar(select(ImageRow).where(ImageRow.image_id == image_id, visible_to(owner)))
    if image is None or image.state == 'deregistered':
        raise NotFound(f'{code_prefix}.NotFound', f"The image id '[{image_id}]' does not exist")
    if image.state != 'available':
        raise InvalidValue(f"The image '{image_id}' is not available (it is {image.state})",
                           code='InvalidAMIID.Unavailable')
    if image.image_type != image_type:
        raise InvalidValue(f"The image '{image_id}' is a {image.image_type} image, not a {image_type} image",
                           code='InvalidParameterValue')
    return image


def _placement_group(session, owner, name):
    if not name:
        return None
    group = session.scalar(select(PlacementGroup).where(PlacementGroup.owner == owner,
                                                        PlacementGroup.name == name))
    if group is None:
        raise NotFound('InvalidPlacementGroup.Unknown', f"The Placement Group '{name}' is unknown.")
    return group


def _group_hosts(session, owner, group):
    if group is None:
        return frozenset()
    return frozenset(session.scalars(select(InstanceRow.host_id).where(
        InstanceRow.owner == owner, InstanceRow.placement_group == group.name,
        InstanceRow.state.in_([state.value for state in HOLDS_CAPACITY]))))


@dataclasses.dataclass
class _NetworkPlan:
    """A launch's interfaces, leases and group memberships, written after its instances."""
    network: NetworkRow                 # the primary subnet
    leases: dict                        # instance_id -> eth0's lease
    interface_rows: list
    lease_rows: list
    memberships: list

    def write(self, session, owner, interface_tags):
        session.execute(InterfaceRow.__table__.insert(), self.interface_rows)
        session.execute(Lease.__table__.insert(), self.lease_rows)
        join_groups(session, self.memberships)
        if interface_tags:
            session.execute(Tag.__table__.insert(), [
                {'resource_id': row['interface_id'], 'key': key, 'value': value, 'owner': owner,
                 'resource_type': 'network-interface'}
                for row in self.interface_rows for key, value in interface_tags])


def _peers_refused(session, hosts, request, image):
    """{peer host id: why it cannot run this launch}: a peer runs only images mapped to one of its
    own, and cannot give what the launch asks of this cloud's networks and storage."""
    peer_ids = [host.host_id for host in hosts if host.peer]
    if not peer_ids:
        return {}
    need = _local_need(request, image)
    if need:
        return {host_id: f'peer cloud cannot run it: {need}' for host_id in peer_ids}
    mapped = set(session.scalars(select(PeerImage.host_id).where(PeerImage.image_id == request.image_id)))
    return {host_id: f'peer cloud cannot run it: no image there is mapped to {request.image_id}'
            for host_id in peer_ids if host_id not in mapped}


def _local_need(request, image):
    """What of this cloud's own a launch asks for, which a peer cloud cannot give; None if nothing."""
    if request.subnet_id or request.private_ip or request.extra_interfaces:
        return 'the launch names subnets, addresses or further interfaces of this cloud'
    if request.security_group_ids or request.security_group_names:
        return "the launch names security groups of this cloud"
    if request.block_devices or image.root_device_type == 'ebs' or request.kernel_id or request.ramdisk_id:
        return 'the launch needs volumes, kernels or ramdisks of this cloud'
    return None


def _refuse_dedicated_host(host_id):
    """No account has dedicated hosts here; which machine runs an instance is not a tenant's choice,
    since placing next to a chosen victim is a known attack on shared clouds."""
    if not DEDICATED_HOST_ID.fullmatch(host_id):
        raise InvalidValue(f'Invalid id: "{host_id}"', code='InvalidHostID.Malformed')
    raise NotFound('InvalidHostID.NotFound', f"The host ID '{host_id}' does not exist")


def _host_id(hosts, host_name):
    if not host_name:
        return None
    for host in hosts:
        if host.name == host_name:
            return host.host_id
    raise NotFound('InvalidHostID.NotFound', f"The host '{host_name}' does not exist")


_HOSTS = HostRow.__table__
# One conditional UPDATE, executed for many hosts at once: a host whose free capacity no longer
# covers the request is simply not updated, which the row count reveals.
_TAKE_CAPACITY = update(_HOSTS).where(
    _HOSTS.c.id == bindparam('target_host'),
    _HOSTS.c.used_cpus + bindparam('more_cpus') <= _HOSTS.c.cpus,
    _HOSTS.c.used_memory_mib + bindparam('more_memory') <= _HOSTS.c.memory_mib,
    _HOSTS.c.enabled.is_(True),
).values(used_cpus=_HOSTS.c.used_cpus + bindparam('more_cpus'),
         used_memory_mib=_HOSTS.c.used_memory_mib + bindparam('more_memory'))


def _reserve_capacity(session, host_ids, kind, message_host=False):
    """Take capacity with conditional updates, so a concurrent launch can never overcommit a host."""
    counts = collections.Counter(host_ids)
    rows = [{'target_host': host_id, 'more_cpus': kind.vcpus * count, 'more_memory': kind.memory_mib * count}
            for host_id, count in counts.items()]
    result = session.connection().execute(_TAKE_CAPACITY, rows)
    if result.rowcount != len(rows):
        if message_host:
            raise CapacityError('InsufficientInstanceCapacity',
                                'Its host has no room for the instance now; try again later.')
        raise _CapacityRace()


def _new_instance(owner, request, kind, image, reservation_id, instance_id, index, host_id, zone,
                  network_id, lease, group, now):
    return {
        'instance_id': instance_id, 'reservation_id': reservation_id, 'owner': owner,
        'image_id': request.image_id, 'kernel_id': request.kernel_id or image.kernel_id,
        'ramdisk_id': request.ramdisk_id or image.ramdisk_id, 'instance_type': kind.name,
        'vcpus': kind.vcpus, 'memory_mib': kind.memory_mib, 'key_name': request.key_name,
        'user_data': request.user_data, 'state': State.PENDING.value, 'host_id': host_id, 'zone': zone,
        'network_id': network_id, 'private_ip': lease.ip if lease else None, 'mac': lease.mac if lease else None,
        'placement_group': group.name if group else None, 'ami_launch_index': index,
        'client_token': request.client_token, 'launch_time': now, 'state_changed_at': now,
        'attempts': 0, 'disable_api_termination': request.disable_api_termination,
        'disable_api_stop': request.disable_api_stop, 'shutdown_behavior': request.shutdown_behavior,
    }


# -- filtering ---------------------------------------------------------------------------------------

_COLUMNS = {
    'instance-id': InstanceRow.instance_id,
    'instance-type': InstanceRow.instance_type,
    'image-id': InstanceRow.image_id,
    'private-ip-address': InstanceRow.private_ip,
    'ip-address': InstanceRow.public_ip,
    'key-name': InstanceRow.key_name,
    'availability-zone': InstanceRow.zone,
    'reservation-id': InstanceRow.reservation_id,
    'kernel-id': InstanceRow.kernel_id,
    'ramdisk-id': InstanceRow.ramdisk_id,
    'placement-group-name': InstanceRow.placement_group,
    'mac-address': InstanceRow.mac,
    'owner-id': InstanceRow.owner,
    'client-token': InstanceRow.client_token,
}
FILTER_FIELDS = frozenset(_COLUMNS) | {'instance-state-name', 'instance-state-code', 'subnet-id', 'vpc-id', 'host-id',
                                       'root-device-type'}


def _is_wildcard(value):
    return '*' in value or '?' in value or '\\' in value


def _still_visible(horizon):
    return or_(InstanceRow.terminated_at.is_(None), InstanceRow.terminated_at > horizon)


def _listing(*conditions):
    """Instances as plain column rows, not ORM objects: a listing of thousands is several times cheaper so."""
    return select(InstanceRow.__table__, HostRow.name.label('host_name'), NetworkRow.subnet_id.label('subnet_id'),
                  VpcRow.vpc_id.label('vpc_id')) \
        .outerjoin(HostRow, HostRow.id == InstanceRow.host_id) \
        .outerjoin(NetworkRow, NetworkRow.id == InstanceRow.network_id) \
        .outerjoin(VpcRow, VpcRow.id == NetworkRow.vpc_pk) \
        .where(*conditions).order_by(InstanceRow.instance_id)


@functools.lru_cache(maxsize=64)
def _plain_listing(by_owner, id_slots, paged_after, limited):
    """The prepared unfiltered listing for one shape of request (bind values are given per call)."""
    query = _listing(_still_visible(bindparam('horizon', type_=InstanceRow.terminated_at.type)))
    if by_owner:
        query = query.where(InstanceRow.owner == bindparam('owner'))
    if id_slots:
        query = query.where(InstanceRow.instance_id.in_(_slot_params('id', id_slots)))
    if paged_after:
        query = query.where(InstanceRow.instance_id > bindparam('after'))
    if limited:
        query = query.limit(bindparam('limit'))
    return Prepared(query)


@functools.lru_cache(maxsize=16)
def _tags_of(id_slots):
    return Prepared(select(Tag.resource_id, Tag.key, Tag.value).where(
        Tag.resource_id.in_(_slot_params('id', id_slots))))


def _prepared_tags(read, ids):
    """{instance id: {key: value}} for these instances, read through prepared statements."""
    return _tags_by_instance(ids, lambda chunk: read(_tags_of(_slots(len(chunk))), **_slot_values('id', chunk)))


def _tags_by_instance(ids, read_chunk):
    """{instance id: {key: value}}, from `read_chunk(ids)` giving (resource id, key, value) rows for at
    most MAX_ID_SLOTS ids at a time."""
    tags = {}
    for start in range(0, len(ids), MAX_ID_SLOTS):
        for resource_id, key, value in read_chunk(ids[start:start + MAX_ID_SLOTS]):
            tags.setdefault(resource_id, {})[key] = value
    return tags


def _slots(count):
    """Bound parameters for `count` ids: the next power of two, so a handful of shapes cover every count."""
    return 1 << max(count - 1, 0).bit_length()


def _slot_params(prefix, slots):
    return [bindparam(f'{prefix}{index}') for index in range(slots)]


def _slot_values(prefix, values):
    """Values for the slots of `prefix`; the spare slots repeat the last value, harmless in IN (…)."""
    if not values:
        return {}
    padded = list(values) + [values[-1]] * (_slots(len(values)) - len(values))
    return {f'{prefix}{index}': value for index, value in enumerate(padded)}


def _split_criteria(criteria):
    """SQL conditions for what the database can match exactly; Python tests for wildcards."""
    conditions, tests = [], []
    for criterion in criteria:
        values = tuple(criterion.values)
        if any(_is_wildcard(value) for value in values):
            tests.append(_python_test(criterion.field, values))
        else:
            conditions.append(_sql_condition(criterion.field, values))
    return conditions, tests


def _sql_condition(field, values):
    if field == 'instance-state-name':
        return InstanceRow.state.in_(_internal_states(lambda name, code: name in values))
    if field == 'instance-state-code':
        return InstanceRow.state.in_(_internal_states(lambda name, code: str(code) in values))
    if field == 'subnet-id':
        return InstanceRow.network_id.in_(select(NetworkRow.id).where(NetworkRow.subnet_id.in_(values)))
    if field == 'vpc-id':
        return InstanceRow.network_id.in_(select(NetworkRow.id).join(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
                                          .where(VpcRow.vpc_id.in_(values)))
    if field in ('host-id', 'nothing'):
        return false()      # host-id: EC2's dedicated host, none here (host names are not for tenants)
    if field == 'root-device-type':
        ebs_root = exists().where(VolumeRow.instance_id == InstanceRow.instance_id, VolumeRow.device.in_(ROOT_DEVICES))
        return or_(*([ebs_root] if 'ebs' in values else []), *([~ebs_root] if 'instance-store' in values else []))
    if field.startswith('tag:'):
        return exists().where(Tag.resource_id == InstanceRow.instance_id, Tag.key == field[4:],
                              Tag.value.in_(values))
    if field == 'tag-key':
        return exists().where(Tag.resource_id == InstanceRow.instance_id, Tag.key.in_(values))
    if field == 'tag-value':
        return exists().where(Tag.resource_id == InstanceRow.instance_id, Tag.value.in_(values))
    return _COLUMNS[field].in_(values)


def _internal_states(wanted):
    return [state.value for state in State if wanted(*ec2_state(state))]


def _python_test(field, values):
    patterns = [wildcard(value) for value in values]
    read = _RECORD_READERS.get(field)
    if field.startswith('tag:'):
        key = field[4:]
        read = lambda record: [record.tags[key]] if key in record.tags else []
    elif field == 'tag-key':
        read = lambda record: list(record.tags)
    elif field == 'tag-value':
        read = lambda record: list(record.tags.values())
    return lambda record: any(pattern(value) for value in read(record) if value is not None
                              for pattern in patterns)


_RECORD_READERS = {
    'instance-state-name': lambda r: [r.ec2_state[0]],
    'instance-state-code': lambda r: [str(r.ec2_state[1])],
    'subnet-id': lambda r: [r.subnet_id],
    'vpc-id': lambda r: [r.vpc_id],
    'host-id': lambda r: [],
    **{field: (lambda column_name: lambda r: [getattr(r, column_name)])(column.key)
       for field, column in _COLUMNS.items()},
}


# -- paging and records ------------------------------------------------------------------------------

def _fetch_page(session, query, python_tests, after, limit):
    """Keyset pagination by instance id; wildcard tests are applied while reading batches."""
    if after:
        query = query.where(InstanceRow.instance_id > after)
    if not python_tests:
        rows = session.execute(query if limit is None else query.limit(limit + 1)).all()
        return _cut_page(_records(session, rows), limit)
    batch = max((limit or 0) * 2, 500)
    matched, last = [], after
    while True:
        page_query = query.where(InstanceRow.instance_id > last) if last else query
        rows = session.execute(page_query.limit(batch)).all()
        for record in _records(session, rows):
            if all(test(record) for test in python_tests):
                matched.append(record)
                if limit is not None and len(matched) > limit:
                    return matched[:limit], True
        if len(rows) < batch:
            return matched, False
        last = rows[-1].instance_id


def _cut_page(records, limit):
    """(page, more) from records read with one beyond the limit."""
    if limit is not None and len(records) > limit:
        return records[:limit], True
    return records, False


def _records(session, rows):
    tags = _tags_by_instance([row.instance_id for row in rows], lambda chunk: session.execute(
        select(Tag.resource_id, Tag.key, Tag.value).where(Tag.resource_id.in_(chunk))))
    return [_record(row, tags.get(row.instance_id, {})) for row in rows]


def _record(row, tags):
    return InstanceRecord(
        row.instance_id, row.reservation_id, row.owner, row.image_id, row.kernel_id, row.ramdisk_id,
        row.instance_type, row.vcpus, row.memory_mib, row.key_name, row.state, row.state_reason_code,
        row.state_reason_message, row.transition_reason, row.host_name, row.zone, row.subnet_id, row.vpc_id, row.private_ip,
        row.mac, row.public_ip, row.placement_group, row.ami_launch_index, row.client_token,
        row.launch_time, row.state_changed_at, row.terminated_at, tags, row.disable_api_termination,
        row.disable_api_stop, row.shutdown_behavior)
