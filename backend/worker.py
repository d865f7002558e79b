"""The worker: carries out lifecycle work (deploy, reboot, stop, destroy) for the hosts it drives.

Work is not a separate queue: an instance in a work state (pending, rebooting, stopping,
shutting-down) *is* the work item, so a crash loses nothing — after a restart the same rows are
found again. Each worker process claims hosts (a row lease renewed every monitor round), and only
touches instances on its own hosts, so several processes sharing PostgreSQL never do the same work.
"""
import collections
import concurrent.futures
import datetime
import logging
import os
import secrets
import socket
import threading
import time

from sqlalchemy import exists, func, or_, select, update

from .drivers import open_driver
from .drivers.base import DiskImage, DomainState, DriverError, LaunchSpec, NicSpec
from .drivers.instance_files import InstanceFiles
from .networking import addressing
from .networking.host_firewall import HostFirewall
from .networking.host_network import HostNetwork, HostNetworkError, bridge_name, is_on_this_machine, tap_name
from .instances import transition
from .lifecycle import HOLDS_CAPACITY, HOLDS_TARGET_CAPACITY, WORK_STATES, Event, State
from .models import Host as HostRow, Image as ImageRow, Instance as InstanceRow, KeyPair as KeyPairRow
from .models import Lease, Network as NetworkRow, Tag, NetworkInterface as InterfaceRow, Volume as VolumeRow, Vpc as VpcRow
from .models import utcnow
from .monitor import Monitor
from .attachments import Attachments
from .storage.disk_attachments import DiskAttachments, volumes_of
from .storage.snapshot_jobs import SnapshotJobs
from .storage.volume_states import VolumeState
from .snapshots import Snapshotter

log = logging.getLogger(__name__)

CHUNK = 50                       # instances handled per task, committed in one transaction
BATCH = 1000                     # work items fetched per dispatch round
CLAIM_SECONDS = 30.0
CLAIM_REFRESH_SECONDS = 2.0
# Longer than a graceful stop or an image copy should take: the log names such work once.
SLOW_WORK_SECONDS = 180
RETRY_BACKOFF_SECONDS = (2.0, 5.0, 15.0)
# States whose domain a host restores when it comes back empty (libvirt's autostart, for simulated
# hosts, whose in-memory state dies with the process that opened them).
RESTORED_STATES = (State.RUNNING.value, State.REBOOTING.value, State.IMPAIRED.value, State.STOPPING.value)


class HostPool:
    """One driver per host row in this process (for test:/// URIs, the connection is the host)."""

    def __init__(self, on_first_connect, files, network, peer_settings=lambda host_id: None, names=None,
                 shared_storage=lambda host_id: None):
        self._hosts = {}
        self._names = names                     # the installation's HostNames: its domain names
        self._lock = threading.Lock()
        self._on_first_connect = on_first_connect
        self._files = files
        self._network = network
        self._peer_settings = peer_settings     # host id -> PeerSettings of a peer cloud, or None
        self._shared_storage = shared_storage   # host id -> where it sees this machine's files, or None

    def get(self, host_id, uri):
        with self._lock:
            host = self._hosts.get(host_id)
            fresh = host is None or host.uri != uri
            if fresh:
                host = self._hosts[host_id] = open_driver(uri, self._files, self._network,
                                                          peer=self._peer_settings(host_id), names=self._names,
                                                          shared_storage=self._shared_storage(host_id))
        if fresh:
            self._on_first_connect(host_id, host)
        return host

    def keep_only(self, host_ids):
        """Close the connections of hosts this process no longer drives."""
        with self._lock:
            gone = [host_id for host_id in self._hosts if host_id not in host_ids]
        for host_id in gone:
            self.forget(host_id)

    def forget(self, host_id):
        with self._lock:
            host = self._hosts.pop(host_id, None)
        if host is not None:
            host.close()

    def close(self):
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            host.close()


class Worker:
    def __init__(self, cloud, worker_id=None):
        self.cloud = cloud
        self.db = cloud.db
        self.settings = cloud.config.compute
        self.worker_id = worker_id or f'{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}'
        self.images_dir = cloud.config.images_dir
        self.files = InstanceFiles(cloud.config.home / 'instances')   # overlays, context CDs, consoles
        names = cloud.config.host_names      # what everything made on a machine is called
        self.host_network = HostNetwork(uplink=self.settings.vlan_uplink, names=names)   # bridges, routers, NAT
        self.installation = str(cloud.config.home)
        groups = cloud.config.security_groups
        self.firewall = HostFirewall(groups.table_prefix, self.installation, cloud.config.home / 'firewall',
                                     simulated_host_rules=groups.simulated_host_rules, names=names)  # security groups
        self.hosts = HostPool(self._restore_host, self.files, self.host_network,
                              cloud.peers.settings, names, cloud.hosts.shared_storage)
        self.monitor = Monitor(self)
        self.snapshots = Snapshotter(self)   # CreateImage jobs of instances on our hosts
        self.attachments = Attachments(self)  # network interfaces plugged into and out of instances
        self.disk_attachments = DiskAttachments(self, cloud.volumes.files)   # and volumes
        self.snapshot_jobs = SnapshotJobs(self, cloud.volumes.files)        # EBS snapshots
        self._owned = {}                     # host_id -> uri, for the hosts this worker drives
        self._in_flight = {}                 # instance_id -> when work on it began (monotonic)
        self._reported_slow = set()
        self._in_flight_lock = threading.Lock()
        self._wake = threading.Event()
        self._wakes = 0                      # counts wake-ups: the firewall rereads its policy after one
        self._stopping = threading.Event()
        self._executor = None
        self._threads = []

    # -- running -------------------------------------------------------------------------------------

    def start(self):
        self.claim_hosts()
        self.reconcile_capacity()
        self.cloud.volumes.recover()         # what CreateVolume and DeleteVolume left half done
        self.snapshot_jobs.recover()         # snapshots a dead worker of this machine was taking
        for name, loop in (('reservoir-dispatch', self._dispatch_loop), ('reservoir-monitor', self._monitor_loop)):
            thread = threading.Thread(target=loop, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self):
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._executor:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self.release_hosts()
        self.hosts.close()

    def wake(self):
        self._wakes += 1
        self._wake.set()

    def _dispatch_loop(self):
        last_claim = time.monotonic()
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_claim > CLAIM_REFRESH_SECONDS:
                    self.claim_hosts()   # hosts added meanwhile are driven within a second or two
                    last_claim = time.monotonic()
                self.host_network.reconcile(self.db, list(self._owned.values()))   # routers follow the database
                self.firewall.reconcile(self.db, dict(self._owned), self._wakes)     # and security groups
                busy = self.dispatch()
                self.snapshots.dispatch()
                self.attachments.dispatch()
                self.disk_attachments.dispatch()
                busy |= self.snapshot_jobs.dispatch()
            except Exception:
                log.exception('dispatch round failed')
                busy = False
            if not busy:
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()

    def _monitor_loop(self):
        while not self._stopping.wait(self.settings.monitor_seconds):
            try:
                self.claim_hosts()
                self.monitor.run_round()
                self.report_slow_work()
                self.cloud.instances.purge_terminated()
                self.cloud.images.reclaim_storage()   # files of deregistered images nothing uses now
                self.cloud.volumes.reap()             # files of volumes deleted with their instances
                self.cloud.volume_snapshots.reap()    # files of deleted snapshots nothing is built on
                self.snapshot_jobs.settle_images()    # EBS-backed images of CreateImage
            except Exception:
                log.exception('monitor round failed')

    # -- host claims ---------------------------------------------------------------------------------

    def claim_hosts(self):
        """Take free hosts and renew the row lease on ours; cheap when nothing changed."""
        now = utcnow()
        ttl = datetime.timedelta(seconds=max(CLAIM_SECONDS, 6 * self.settings.monitor_seconds))
        with self.db.write() as session:
            # Renew only leases past half their life: no write at all on most rounds.
            session.execute(update(HostRow).where(HostRow.claimed_by == self.worker_id,
                                                  HostRow.claimed_until < now + ttl / 2)
                            .values(claimed_until=now + ttl))
            free = or_(HostRow.claimed_by.is_(None), HostRow.claimed_until < now)
            query = select(HostRow.id).where(free, or_(HostRow.claimed_by.is_(None),
                                                       HostRow.claimed_by != self.worker_id)).order_by(HostRow.id)
            limit = self.settings.hosts_per_worker
            if limit:
                query = query.limit(max(0, limit - len(self._owned)))
            ids = [] if limit and len(self._owned) >= limit else \
                session.scalars(query.with_for_update(skip_locked=True)).all()
            if ids:
                session.execute(update(HostRow).where(HostRow.id.in_(ids))
                                .values(claimed_by=self.worker_id, claimed_until=now + ttl))
            rows = session.execute(select(HostRow.id, HostRow.uri).where(HostRow.claimed_by == self.worker_id)).all()
        self._owned = {row.id: row.uri for row in rows}
        self.hosts.keep_only(self._owned)

    def owned_hosts(self):
        """{host_id: uri} of the hosts this worker drives now."""
        return dict(self._owned)

    def driver_of(self, host_id):
        """The driver of an owned host, or None when this worker does not drive it."""
        uri = self._owned.get(host_id)
        return None if uri is None else self.hosts.get(host_id, uri)

    def release_hosts(self):
        with self.db.write() as session:
            session.execute(update(HostRow).where(HostRow.claimed_by == self.worker_id)
                            .values(claimed_by=None, claimed_until=None))
        self._owned = {}

    def reconcile_capacity(self):
        """Recompute each owned host's allocation from its instances: a crash can never leak capacity."""
        holding = [state.value for state in HOLDS_CAPACITY]
        with self.db.write() as session:
            totals = {row.host_id: (row.cpus, row.memory) for row in session.execute(
                select(InstanceRow.host_id, func.sum(InstanceRow.vcpus).label('cpus'),
                       func.sum(InstanceRow.memory_mib).label('memory'))
                .where(InstanceRow.state.in_(holding), InstanceRow.host_id.in_(list(self._owned)))
                .group_by(InstanceRow.host_id))}
            for row in session.execute(   # a moving instance may hold its target's share too
                    select(InstanceRow.migration_host_id, func.sum(InstanceRow.vcpus).label('cpus'),
                           func.sum(InstanceRow.memory_mib).label('memory'))
                    .where(InstanceRow.state.in_([state.value for state in HOLDS_TARGET_CAPACITY]),
                           InstanceRow.migration_host_id.in_(list(self._owned)))
                    .group_by(InstanceRow.migration_host_id)):
                cpus, memory = totals.get(row.migration_host_id, (0, 0))
                totals[row.migration_host_id] = ((cpus or 0) + row.cpus, (memory or 0) + row.memory)
            for host_id in self._owned:
                cpus, memory = totals.get(host_id, (0, 0))
                session.execute(update(HostRow).where(HostRow.id == host_id)
                                .values(used_cpus=cpus or 0, used_memory_mib=memory or 0))

    # -- dispatching ---------------------------------------------------------------------------------

    def dispatch(self, wait=False):
        """Hand due work on owned hosts to the thread pool; True if any was found."""
        if not self._owned:
            return False
        now = utcnow()
        with self.db.read() as session:
            rows = session.execute(
                select(InstanceRow.instance_id, InstanceRow.state, InstanceRow.host_id)
                .where(InstanceRow.state.in_([state.value for state in WORK_STATES]),
                       InstanceRow.host_id.in_(list(self._owned)),
                       or_(InstanceRow.next_attempt_at.is_(None), InstanceRow.next_attempt_at <= now),
                       # An instance whose launch volumes are still being made waits for them.
                       ~exists().where(VolumeRow.instance_id == InstanceRow.instance_id,
                                       VolumeRow.state == VolumeState.CREATING.value))
                .order_by(InstanceRow.state_changed_at).limit(BATCH)).all()
        groups = collections.defaultdict(list)
        with self._in_flight_lock:
            for instance_id, state, host_id in rows:
                if instance_id not in self._in_flight:
                    self._in_flight[instance_id] = time.monotonic()
                    groups[state].append((host_id, instance_id))
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(self.settings.worker_threads,
                                                                   thread_name_prefix='reservoir-work')
        futures = [self._executor.submit(self._work_guarded, State(state), chunk)
                   for state, items in groups.items() for chunk in self._chunks(State(state), items)]
        if wait:
            concurrent.futures.wait(futures)
        return bool(groups)

    def _chunks(self, state, items):
        """Chunks span hosts: a striped launch puts one instance on each of many hosts, and a chunk
        costs one read and one write transaction however many hosts it touches. A host that deploys
        together (a peer cloud: one request per reservation) gets all its deploys in one chunk."""
        together = collections.defaultdict(list)
        if state is State.PENDING:
            hosts = {host_id for host_id, _ in items if self._deploys_together(host_id)}
            for item in items:
                if item[0] in hosts:
                    together[item[0]].append(item)
            items = [item for item in items if item[0] not in hosts]
        return [*together.values(), *(items[start:start + CHUNK] for start in range(0, len(items), CHUNK))]

    def _deploys_together(self, host_id):
        uri = self._owned.get(host_id)
        try:
            return uri is not None and self.hosts.get(host_id, uri).deploys_together
        except DriverError:
            return False

    def claim_instance(self, instance_id):
        """Mark an instance busy for work done outside dispatch (CreateImage); False if it already is."""
        with self._in_flight_lock:
            if instance_id in self._in_flight:
                return False
            self._in_flight[instance_id] = time.monotonic()
            return True

    def release_instance(self, instance_id):
        with self._in_flight_lock:
            self._in_flight.pop(instance_id, None)
        self._wake.set()

    def in_flight(self, instance_id):
        with self._in_flight_lock:
            return instance_id in self._in_flight

    def report_slow_work(self):
        """Say once which instances a host call has held longer than it should (a hung host or
        lock would otherwise leave them pending in silence)."""
        now = time.monotonic()
        with self._in_flight_lock:
            slow = sorted(i for i, began in self._in_flight.items() if now - began > SLOW_WORK_SECONDS)
            self._reported_slow &= set(self._in_flight)
            new = [instance_id for instance_id in slow if instance_id not in self._reported_slow]
            self._reported_slow.update(new)
        if new:
            log.warning('work on %s has run for more than %d s', ', '.join(new), SLOW_WORK_SECONDS)

    def _work_guarded(self, state, items):
        ids = [instance_id for _, instance_id in items]
        try:
            self._work(state, items)
        except Exception:
            log.exception('work on %s (%s) failed', ids, state.value)
        finally:
            with self._in_flight_lock:
                for instance_id in ids:
                    self._in_flight.pop(instance_id, None)
            self._wake.set()

    def _work(self, state, items):
        items = self._still_due(state, items)
        work = {}
        for host_id, instance_id in items:
            uri = self._owned.get(host_id)
            if uri is not None:
                work.setdefault(host_id, (self.hosts.get(host_id, uri), []))[1].append(instance_id)
        specs = self._launch_specs(work) if state is State.PENDING else None
        handler = {State.PENDING: self._deploy, State.REBOOTING: self._reboot,
                   State.STOPPING: self._stop, State.SHUTTING_DOWN: self._destroy,
                   State.CLEANING_UP: self._destroy, State.MIGRATING: self._migrate,
                   State.RELOCATING: self._relocate, State.MOVING_TO_START: self._relocate}[state]
        outcomes = {}
        for host_id, (host, ids) in work.items():
            outcomes.update(handler(host, host_id, ids, specs))
        self._record(state, outcomes)

    def _still_due(self, state, items):
        """Drop instances whose state moved on since dispatch read them.

        The dispatcher's read may predate the commit of a chunk that finished just before it looked
        at the in-flight set; without this check that chunk's instances would be worked on twice.
        """
        with self.db.query() as connection:
            current = dict(connection.execute(select(InstanceRow.instance_id, InstanceRow.state).where(
                InstanceRow.instance_id.in_([instance_id for _, instance_id in items]))).all())
        return [(host_id, instance_id) for host_id, instance_id in items if current.get(instance_id) == state.value]

    # Each handler returns {instance_id: (event or None, reason_code, reason)}; None means "failed,
    # retry later" for deploys and destroys, with the reason kept for the last attempt.

    def _deploy(self, host, host_id, ids, specs):
        outcomes, ready = {}, []
        for instance_id in ids:
            spec = specs.get(instance_id)
            if spec is None:
                continue   # the instance is gone; nothing to deploy
            if isinstance(spec, Exception):
                outcomes[instance_id] = (None, 'Server.InternalError', str(spec))
                continue
            if is_on_this_machine(self._owned.get(host_id, '')) and not host.simulated and self.firewall.kernel_error:
                # No guest starts unguarded: retried once the security groups are in the kernel.
                outcomes[instance_id] = (None, 'Server.InternalError',
                                         f'security groups cannot be enforced here: {self.firewall.kernel_error}')
                continue
            ready.append(spec)
        for instance_id, error in host.deploy_many(ready).items():
            outcomes[instance_id] = (Event.DEPLOYED, None, None) if error is None else \
                (None, 'Server.InternalError', str(error))
        return outcomes

    def _reboot(self, host, host_id, ids, _specs=None):
        outcomes = {}
        for instance_id in ids:
            try:
                host.reboot(instance_id)
                outcomes[instance_id] = (Event.REBOOTED, None, None)
            except DriverError as error:
                outcomes[instance_id] = (None, 'Server.InternalError', str(error))
        return outcomes

    def _stop(self, host, host_id, ids, _specs=None):
        """ACPI power button for all, then wait; whoever is still up at the timeout is powered off.
        A forced stop (StopInstances Force) skips the button and the wait."""
        outcomes, waiting = {}, []
        with self.db.query() as connection:
            forced = set(connection.execute(select(InstanceRow.instance_id).where(
                InstanceRow.instance_id.in_(ids), InstanceRow.stop_forced.is_(True))).scalars())
        for instance_id in ids:
            try:
                if instance_id in forced:
                    host.power_off(instance_id)
                elif host.shutdown(instance_id):
                    waiting.append(instance_id)
            except DriverError as error:
                outcomes[instance_id] = (None, 'Server.InternalError', str(error))
        deadline = time.monotonic() + self.settings.stop_timeout_seconds
        while waiting and time.monotonic() < deadline and not self._stopping.is_set():
            waiting = [instance_id for instance_id in waiting if _still_up(host, instance_id)]
            if waiting:
                time.sleep(0.25)
        for instance_id in ids:
            if instance_id in outcomes:
                continue
            try:
                if instance_id in waiting:
                    host.power_off(instance_id)
                outcomes[instance_id] = (Event.STOPPED, 'Client.UserInitiatedShutdown',
                                         'Client.UserInitiatedShutdown: User initiated shutdown')
            except DriverError as error:
                outcomes[instance_id] = (None, 'Server.InternalError', str(error))
        return outcomes

    def _destroy(self, host, host_id, ids, _specs=None):
        outcomes = {}
        for instance_id in ids:
            try:
                host.destroy(instance_id)
                outcomes[instance_id] = (Event.CLEANED_UP, 'Client.UserInitiatedShutdown',
                                         'Client.UserInitiatedShutdown: User initiated shutdown')
            except DriverError as error:
                outcomes[instance_id] = (None, 'Server.InternalError', str(error))
        return outcomes

    def _migrate(self, host, host_id, ids, _specs=None):
        """Move each instance to its target host; a move that fails leaves it running where it was."""
        return self._move_each(ids, 'moving %s failed: %s', lambda instance_id, target, driver, spec:
                               host.migrate(instance_id, driver, target.migration_live, spec))

    def _relocate(self, host, host_id, ids, _specs=None):
        """Move each stopped instance's disks to its target host (then it stays stopped there, or
        starts there); a move that fails leaves it stopped where it was. A source host that does
        not answer gives up only what both hosts share."""
        with self.db.read() as session:
            source_lost = session.scalar(select(HostRow.state).where(HostRow.id == host_id)) != 'ok'
        return self._move_each(ids, 'moving the stopped instance %s failed: %s', lambda instance_id, target, driver, spec:
                               host.relocate(instance_id, driver, spec, source_lost=source_lost))

    def _move_each(self, ids, failure_log, move):
        """Runs `move(instance id, target row, target driver, launch spec)` for each instance that has
        a target host; {instance id: (event, reason code, reason)} of how each went."""
        with self.db.read() as session:
            targets = {row.instance_id: row for row in session.execute(
                select(InstanceRow.instance_id, InstanceRow.migration_live, HostRow.id, HostRow.uri)
                .join(HostRow, HostRow.id == InstanceRow.migration_host_id)
                .where(InstanceRow.instance_id.in_(ids)))}
        outcomes = {}
        for instance_id in ids:
            target = targets.get(instance_id)
            if target is None:
                continue
            try:
                driver = self.hosts.get(target.id, target.uri)
                spec = self._launch_specs({target.id: (driver, [instance_id])}, moving=True)[instance_id]
                if isinstance(spec, Exception):
                    raise DriverError(str(spec))
                move(instance_id, target, driver, spec)
                outcomes[instance_id] = (Event.MIGRATED, None, None)
            except DriverError as error:
                log.warning(failure_log, instance_id, error)
                outcomes[instance_id] = (Event.MIGRATE_FAILED, 'Server.MigrationFailed',
                                         f'Server.MigrationFailed: the move to another host failed: {error}')
        return outcomes

    def _record(self, state, outcomes):
        """Commit what happened in one transaction; an instance whose state moved on meanwhile is left alone."""
        if not outcomes:
            return
        failed_for_good = []
        with self.db.write() as session:
            rows = {row.instance_id: row for row in session.scalars(
                select(InstanceRow).where(InstanceRow.instance_id.in_(list(outcomes))).with_for_update())}
            for instance_id, (event, code, reason) in outcomes.items():
                row = rows.get(instance_id)
                if row is None or row.state != state.value:
                    continue
                if event is Event.CLEANED_UP and row.state_reason_code and \
                        row.state_reason_code != 'Server.InternalError':
                    code = reason = None        # why it was terminated (a peer ended it, say) stands
                if event is not None:
                    transition(session, row, event, reason=reason, reason_code=code)
                elif self._give_up(row, state):
                    transition(session, row, Event.DEPLOY_FAILED, reason=f'{code}: {reason}', reason_code=code)
                    failed_for_good.append((row.host_id, instance_id))
                else:
                    row.attempts += 1
                    delay = RETRY_BACKOFF_SECONDS[min(row.attempts, len(RETRY_BACKOFF_SECONDS)) - 1]
                    row.next_attempt_at = utcnow() + datetime.timedelta(seconds=delay)
                    row.state_reason_code, row.state_reason_message = code, f'{code}: {reason}'
        for host_id, instance_id in failed_for_good:
            self._clean_failed(host_id, instance_id)

    def _give_up(self, row, state):
        # Only deploys give up: a stop, reboot or destroy keeps trying until the host answers.
        return state is State.PENDING and row.attempts + 1 >= self.settings.deploy_attempts

    def _clean_failed(self, host_id, instance_id):
        try:
            host = self.driver_of(host_id)
            if host is not None:
                host.destroy(instance_id)
        except DriverError as error:
            log.warning('could not remove failed instance %s from its host: %s', instance_id, error)

    # -- launch specs --------------------------------------------------------------------------------

    def launch_spec(self, host_id, driver, instance_id):
        """The LaunchSpec of one instance as it stands now (its NICs included), or the error."""
        spec = self._launch_specs({host_id: (driver, [instance_id])})[instance_id]
        if isinstance(spec, Exception):
            raise DriverError(str(spec))
        return spec

    def _launch_specs(self, work, moving=False):
        """{instance_id: LaunchSpec or the exception that prevented making one}, for
        work = {host_id: (driver, [instance ids])}, read in one transaction; with `moving`, as the
        instances will be on the host they move to."""
        ids = [instance_id for _, host_ids in work.values() for instance_id in host_ids]
        with self.db.read() as session:
            rows = session.scalars(select(InstanceRow).where(InstanceRow.instance_id.in_(ids))).all()
            domain_types = dict(session.execute(select(HostRow.id, HostRow.domain_type).where(
                HostRow.id.in_(list({*work, *(row.host_id for row in rows)})))).all())
            images = _images_for(session, rows)
            nics = _nics_of(session, ids, self.installation, moving)
            volumes = volumes_of(session, self.cloud.volumes.files, ids,
                                 {row.instance_id: _domain_type(domain_types[row.host_id]) for row in rows})
            keys = _public_keys(session, rows)
            tags = _tags_of(session, ids)
        specs = {}
        for row in rows:
            try:
                specs[row.instance_id] = self._launch_spec(row, images, nics.get(row.instance_id, ()), keys,
                                                           _domain_type(domain_types[row.host_id]),
                                                           volumes.get(row.instance_id, ()), tags.get(row.instance_id, ()))
            except (HostNetworkError, OSError, ValueError) as error:
                specs[row.instance_id] = error
        return specs

    def _launch_spec(self, row, images, nics, keys, domain_type, volumes=(), tags=()):
        image = images.get(row.image_id)
        return LaunchSpec(
            instance_id=row.instance_id, image_id=row.image_id, instance_type=row.instance_type,
            vcpus=row.vcpus, memory_mib=row.memory_mib, zone=row.zone,
            root=self._disk(image), kernel=self._disk(images.get(row.kernel_id)),
            ramdisk=self._disk(images.get(row.ramdisk_id)), nics=tuple(nics),
            ssh_public_key=keys.get((row.owner, row.key_name)), user_data=row.user_data,
            public_ip=row.public_ip, domain_type=domain_type, volumes=tuple(volumes),
            reservation_id=row.reservation_id, launch_index=row.ami_launch_index or 0, tags=tags)

    def domain_type_of(self, host_id):
        """The domain type ('qemu', 'kvm' or 'xen') instances of a host are defined with."""
        with self.db.read() as session:
            return _domain_type(session.scalar(select(HostRow.domain_type).where(HostRow.id == host_id)))

    def _disk(self, image):
        if image is None or image.path is None:
            return None
        return DiskImage(str(self.images_dir / image.path), image.disk_format or 'raw')

    def _restore_host(self, host_id, host):
        """A simulated host opened for the first time in this process comes up empty: restart what
        should be running on it, as libvirt does with autostart domains."""
        if not host.simulated:
            return
        with self.db.read() as session:
            ids = session.scalars(select(InstanceRow.instance_id).where(
                InstanceRow.host_id == host_id, InstanceRow.state.in_(RESTORED_STATES))).all()
        if not ids:
            return
        for instance_id, spec in self._launch_specs({host_id: (host, ids)}).items():
            if isinstance(spec, Exception):
                continue
            try:
                host.restore(spec)
            except DriverError as error:
                log.warning('could not restore %s: %s', instance_id, error)


def _still_up(host, instance_id):
    try:
        return host.state(instance_id) in (DomainState.RUNNING, DomainState.PAUSED)
    except DriverError:
        return True


def _domain_type(host_domain_type):
    # Simulated hosts get the same QEMU definition a real host would.
    return 'qemu' if host_domain_type == 'test' else host_domain_type


def _images_for(session, rows):
    ids = {image_id for row in rows for image_id in (row.image_id, row.kernel_id, row.ramdisk_id) if image_id}
    return {image.image_id: image for image in session.scalars(select(ImageRow).where(ImageRow.image_id.in_(ids)))}


def _tags_of(session, instance_ids):
    """{instance_id: ((key, value), …)} of the instances' tags."""
    found = collections.defaultdict(list)
    for start in range(0, len(instance_ids), 900):
        for resource_id, key, value in session.execute(select(Tag.resource_id, Tag.key, Tag.value).where(
                Tag.resource_id.in_(instance_ids[start:start + 900])).order_by(Tag.key)):
            found[resource_id].append((key, value))
    return {instance_id: tuple(pairs) for instance_id, pairs in found.items()}


def _public_keys(session, rows):
    wanted = {(row.owner, row.key_name) for row in rows if row.key_name}
    if not wanted:
        return {}
    owners = {owner for owner, _ in wanted}
    return {(key.owner, key.name): key.public_key for key in session.scalars(
        select(KeyPairRow).where(KeyPairRow.owner.in_(owners)))}


def _nics_of(session, instance_ids, installation, moving=False):
    """{instance_id: (NicSpec, …)} of every attached (or attaching) interface, by device index; with
    `moving`, as they will be on the host the instance moves to (the next generation of taps)."""
    result = {}
    for start in range(0, len(instance_ids), 900):
        rows = session.execute(
            select(InterfaceRow.instance_id, InterfaceRow.attachment_id, Lease.address, Lease.mac, NetworkRow,
                   VpcRow.vpc_id, InstanceRow.nic_generation)
            .join(InstanceRow, InstanceRow.instance_id == InterfaceRow.instance_id)
            .join(Lease, (Lease.interface_id == InterfaceRow.interface_id) & Lease.is_primary.is_(True))
            .join(NetworkRow, NetworkRow.id == InterfaceRow.network_id)
            .outerjoin(VpcRow, VpcRow.id == NetworkRow.vpc_pk)
            .where(InterfaceRow.instance_id.in_(instance_ids[start:start + 900]),
                   InterfaceRow.attachment_status.in_(('attaching', 'attached')))
            .order_by(InterfaceRow.instance_id, InterfaceRow.device_index)).all()
        for instance_id, attachment_id, address, mac, network, vpc_id, generation in rows:
            tap = tap_name(installation, attachment_id, generation + 1 if moving else generation)
            result.setdefault(instance_id, []).append(nic_spec(network, vpc_id, addressing.to_text(address), mac, tap))
    return result


def nic_spec(network, vpc_id, ip, mac, tap=None):
    """A NIC with address `ip` on `network`'s bridge, its gateway in the VPC's router."""
    return NicSpec(mac=mac, ip=ip, cidr=network.cidr, gateway=network.gateway, dns=network.dns,
                   bridge=bridge_name(network), vlan=network.vlan, network_key=network.id, vpc_id=vpc_id,
                   vpc_key=network.vpc_pk, tap=tap)
