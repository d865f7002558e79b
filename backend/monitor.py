"""The monitor: polls each host this worker drives and reconciles the database with it.

- A host that stops answering is marked unreachable, and its running instances become `impaired`
  with the reason — never `terminated`, since they may well still run there.
- When it answers again, impaired instances whose domain still runs go back to `running`.
- A running instance whose domain shut off (the guest powered down) or vanished becomes `stopped`,
  with a reason saying which.
- On a peer cloud, an instance the peer no longer has was terminated there; the addresses the peer
  gave an instance are its own, and its tags there are kept in step with the user's tags here.
- Once per sampling interval, the capacity of each host it drives is kept for administrators
  (capacity_history), and what is older than the history window is deleted.
"""
import collections
import datetime
import logging

from sqlalchemy import or_, select

from .drivers.base import OWN_TAG_PREFIX, DomainState, DriverError, Feature
from .instances import transition
from .compute.fencing import FENCED
from .lifecycle import Event, State
from .models import Host as HostRow, Instance as InstanceRow, Tag, utcnow

log = logging.getLogger(__name__)

LAST_SEEN_RESOLUTION = datetime.timedelta(seconds=30)
WATCHED_STATES = (State.RUNNING.value, State.IMPAIRED.value)


class Monitor:
    def __init__(self, worker):
        self.worker = worker
        self.fencing = worker.cloud.fencing

    def run_round(self):
        """Watch the owned hosts, then sample their capacity if this interval has no sample yet."""
        owned = self.worker.owned_hosts()
        self._watch(owned)
        self.worker.cloud.capacity_history.sample(list(owned))

    def _watch(self, owned):
        """Ask every owned host for its domains, then reconcile them all in one transaction."""
        observations, clouds = {}, {}
        # What a host reports is already old when the slowest host has answered: an instance whose
        # state changed since (a deploy that finished meanwhile) is judged at the next round.
        observed_from = utcnow()
        for host_id, uri in owned.items():
            host = self.worker.hosts.get(host_id, uri)
            try:
                if host.supports(Feature.OWN_LIFECYCLE):
                    clouds[host_id] = (host, host.report())
                    observations[host_id] = {i: reported.state for i, reported in clouds[host_id][1].items()}
                else:
                    observations[host_id] = host.states()
            except DriverError as error:
                observations[host_id] = error
                clouds.pop(host_id, None)
        if not observations:
            return
        tag_changes, strays = [], []
        with self.worker.db.write() as session:
            hosts = session.scalars(select(HostRow).where(HostRow.id.in_(list(observations)))).all()
            watched = collections.defaultdict(list)
            for row in session.scalars(select(InstanceRow).where(
                    InstanceRow.host_id.in_(list(observations)), InstanceRow.state.in_(WATCHED_STATES))):
                if not self.worker.in_flight(row.instance_id) and not (
                        row.state_changed_at and row.state_changed_at >= observed_from):
                    watched[row.host_id].append(row)
            for host in hosts:
                observed = observations[host.id]
                if isinstance(observed, DriverError):
                    self._host_lost(session, host, watched[host.id], str(observed))
                else:
                    if host.state in (FENCED, 'unreachable'):     # answering again
                        strays += [(host.id, instance_id) for instance_id in _strays(session, host, observed)
                                   if _may_forget(host, observed[instance_id], instance_id)]
                    self._host_seen(session, host, watched[host.id], observed, host.id in clouds)
            for host_id, (driver, reports) in clouds.items():
                tag_changes += _take_cloud_view(session, driver, watched[host_id], reports)
        for driver, instance_id, tags, removed in tag_changes:
            try:
                driver.mirror_tags(instance_id, tags, removed)
            except DriverError as error:
                log.warning('could not mirror the tags of %s: %s', instance_id, error)
        for host_id, instance_id in strays:
            self._destroy_stray(host_id, instance_id)
        self.fencing.run_round([host_id for host_id, seen in observations.items() if isinstance(seen, DriverError)])

    def _destroy_stray(self, host_id, instance_id):
        """A host came back with a domain of an instance that lives elsewhere now (started again
        after a fence, or moved away while stopped): that domain and the host's own copies of its
        disks go, never the files it shares with the instance's new host."""
        try:
            self.worker.driver_of(host_id).forget(instance_id)
            log.warning('removed %s from a host that answered again: it lives elsewhere now', instance_id)
        except DriverError as error:
            log.warning('could not remove %s from a host that answered again: %s', instance_id, error)

    def _host_lost(self, session, host, instances, reason):
        if host.unreachable_since is None:
            host.unreachable_since = utcnow()      # fencing counts from here
        if host.state == FENCED:
            return                                  # known to be off: nothing more to learn
        if host.state != 'unreachable':
            log.warning('host %s is unreachable: %s', host.name, reason)
        host.state, host.state_reason = 'unreachable', reason
        for row in instances:
            if row.state == State.RUNNING:
                transition(session, row, Event.HOST_LOST, reason=f'Server.HostUnreachable: {reason}',
                           reason_code='Server.HostUnreachable')

    def _host_seen(self, session, host, instances, domains, cloud=False):
        if host.unreachable_since is not None:
            host.unreachable_since = None
        if host.state == FENCED:
            # Its recovered instances' old domains are destroyed this round; it stays disabled.
            log.warning('fenced host %s answers again; disabled until enabled', host.name)
            host.state, host.state_reason = 'ok', 'answered again after it was fenced; enable it to use it'
        elif host.state != 'ok':
            log.info('host %s answers again', host.name)
            host.state, host.state_reason = 'ok', None
        now = utcnow()
        if host.last_seen is None or now - host.last_seen > LAST_SEEN_RESOLUTION:
            host.last_seen = now   # not every round: a thousand hosts would mean a thousand writes
        for row in instances:
            if cloud and row.instance_id not in domains:
                # A peer cloud ended it (its owner there, or the peer's own rules): it is gone for good.
                transition(session, row, Event.TERMINATE, reason='Server.InstanceTerminatedOnPeer: the peer cloud '
                           f'{host.name} terminated the instance', reason_code='Server.InstanceTerminatedOnPeer',
                           transition_reason=f'terminated on the peer cloud {host.name}')
                continue
            self._reconcile(session, row, domains.get(row.instance_id))

    def _reconcile(self, session, row, domain_state):
        if domain_state in (DomainState.RUNNING, DomainState.PAUSED):
            if row.state == State.IMPAIRED:
                transition(session, row, Event.HOST_BACK)
            return
        if domain_state is None:
            code, reason = 'Server.InternalError', 'Server.InternalError: the domain vanished from its host'
        elif domain_state is DomainState.CRASHED:
            code, reason = 'Server.InternalError', 'Server.InternalError: the guest crashed'
        else:
            code, reason = 'Client.InstanceInitiatedShutdown', \
                'Client.InstanceInitiatedShutdown: Instance initiated shutdown'
        transition(session, row, Event.POWERED_OFF, reason=reason, reason_code=code)
        if code == 'Client.InstanceInitiatedShutdown' and row.shutdown_behavior == 'terminate':
            # InstanceInitiatedShutdownBehavior=terminate: a shutdown from inside ends the instance.
            transition(session, row, Event.TERMINATE, transition_reason=reason)


def _take_cloud_view(session, driver, rows, reports):
    """Show the addresses a peer cloud gave its running instances; [(driver, instance_id, tags to
    set, keys to remove)] that bring the peer's tags in step with the user's."""
    rows = [row for row in rows if row.instance_id in reports and row.state == State.RUNNING]
    if not rows:
        return []
    wanted = collections.defaultdict(dict)
    for resource_id, key, value in session.execute(select(Tag.resource_id, Tag.key, Tag.value).where(
            Tag.resource_id.in_([row.instance_id for row in rows]))):
        wanted[resource_id][key] = value
    changes = []
    for row in rows:
        reported = reports[row.instance_id]
        if (row.private_ip, row.public_ip) != (reported.private_ip, reported.public_ip):
            row.private_ip, row.public_ip = reported.private_ip, reported.public_ip
        mine = {key: value for key, value in wanted[row.instance_id].items() if not key.startswith(OWN_TAG_PREFIX)}
        theirs = dict(reported.tags)
        to_set = tuple(sorted((key, value) for key, value in mine.items() if theirs.get(key) != value))
        to_remove = tuple(sorted(key for key in theirs if key not in mine))
        if to_set or to_remove:
            changes.append((driver, row.instance_id, to_set, to_remove))
    return changes


def _may_forget(host, domain_state, instance_id):
    """A fenced host's strays all go (it was known to be off: what runs there runs twice); an
    unreachable one's only when shut off, the definitions of stopped instances moved away, since a
    guest running there would be a conflict no rule settles."""
    if host.state == FENCED or domain_state not in (DomainState.RUNNING, DomainState.PAUSED):
        return True
    log.warning('%s runs on %s, which answers again, yet belongs to another host: left for an administrator',
                instance_id, host.name)
    return False


def _strays(session, host, domains):
    """Instances with a domain on `host` that belong to another host now (recovered or moved
    elsewhere), and are not moving here."""
    if not domains:
        return []
    return session.scalars(select(InstanceRow.instance_id).where(
        InstanceRow.instance_id.in_(list(domains)), InstanceRow.host_id != host.id,
        or_(InstanceRow.migration_host_id.is_(None), InstanceRow.migration_host_id != host.id))).all()
