"""The monitor: polls each host this worker drives and reconciles the database with it.

- A host that stops answering is marked unreachable, and its running instances become `impaired`
  with the reason — never `terminated`, since they may well still run there.
- When it answers again, impaired instances whose domain still runs go back to `running`.
- A running instance whose domain shut off (the guest powered down) or vanished becomes `stopped`,
  with a reason saying which.
"""
import logging

from sqlalchemy import select

from .drivers.libvirt_host import HostError
from .instances import transition
from .lifecycle import Event, State
from .models import Host as HostRow, Instance as InstanceRow, utcnow

log = logging.getLogger(__name__)

WATCHED_STATES = (State.RUNNING.value, State.IMPAIRED.value)


class Monitor:
    def __init__(self, worker):
        self.worker = worker

    def run_round(self):
        for host_id, uri in list(self.worker._owned.items()):
            self.check_host(host_id, uri)

    def check_host(self, host_id, uri):
        host = self.worker.hosts.get(host_id, uri)
        try:
            domains = host.domain_states()
        except HostError as error:
            self._host_lost(host_id, str(error))
            return
        self._host_seen(host_id, domains)

    def _host_lost(self, host_id, reason):
        with self.worker.db.write() as session:
            host = session.get(HostRow, host_id)
            if host.state != 'unreachable':
                log.warning('host %s is unreachable: %s', host.name, reason)
            host.state, host.state_reason = 'unreachable', reason
            for row in self._watched(session, host_id, (State.RUNNING.value,)):
                transition(session, row, Event.HOST_LOST, reason=f'Server.HostUnreachable: {reason}',
                           reason_code='Server.HostUnreachable')

    def _host_seen(self, host_id, domains):
        with self.worker.db.write() as session:
            host = session.get(HostRow, host_id)
            if host.state != 'ok':
                log.info('host %s answers again', host.name)
            host.state, host.state_reason, host.last_seen = 'ok', None, utcnow()
            for row in self._watched(session, host_id, WATCHED_STATES):
                self._reconcile(session, row, domains.get(row.instance_id))

    def _watched(self, session, host_id, states):
        rows = session.scalars(select(InstanceRow).where(InstanceRow.host_id == host_id,
                                                         InstanceRow.state.in_(states))).all()
        return [row for row in rows if not self.worker.in_flight(row.instance_id)]

    def _reconcile(self, session, row, domain_state):
        if domain_state in ('running', 'paused'):
            if row.state == State.IMPAIRED:
                transition(session, row, Event.HOST_BACK, reason_code=None)
            return
        if domain_state is None:
            code, reason = 'Server.InternalError', 'Server.InternalError: the domain vanished from its host'
        elif domain_state == 'crashed':
            code, reason = 'Server.InternalError', 'Server.InternalError: the guest crashed'
        else:
            code, reason = 'Client.InstanceInitiatedShutdown', \
                'Client.InstanceInitiatedShutdown: Instance initiated shutdown'
        transition(session, row, Event.POWERED_OFF, reason=reason, reason_code=code)
