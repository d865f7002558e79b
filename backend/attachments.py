"""Network interfaces attached to or detached from instances, carried out on the hosts a worker drives.

The API records the wish on the interface ('attaching' / 'detaching'); here the worker plugs the NIC
into the instance's domain, or unplugs it, then records 'attached' or forgets the attachment. An
instance that is running gets the NIC hot-plugged (its context CD rewritten first, so the guest's
agent finds the settings); one that is stopped gets it in its definition, for its next start; one
that is pending waits until it runs, since its deploy may already be under way without the NIC.
"""
import logging

from sqlalchemy import select, update

from .drivers.base import DriverError
from .lifecycle import State
from .models import Instance as InstanceRow, NetworkInterface as InterfaceRow

log = logging.getLogger(__name__)

ATTACHING, ATTACHED, DETACHING = 'attaching', 'attached', 'detaching'
# Instance states in which the host's domain can take a NIC change now.
CHANGEABLE = frozenset({State.RUNNING.value, State.STOPPED.value, State.IMPAIRED.value})


class Attachments:
    def __init__(self, worker):
        self.worker = worker
        self.db = worker.db

    def dispatch(self):
        """Carry out the due attachment changes on owned hosts; True if there were any."""
        owned = list(self.worker.owned_hosts())
        if not owned:
            return False
        with self.db.read() as session:
            due = session.execute(
                select(InterfaceRow.interface_id, InterfaceRow.mac, InterfaceRow.attachment_status,
                       InstanceRow.instance_id, InstanceRow.state, InstanceRow.host_id)
                .join(InstanceRow, InstanceRow.instance_id == InterfaceRow.instance_id)
                .where(InterfaceRow.attachment_status.in_((ATTACHING, DETACHING)),
                       InstanceRow.host_id.in_(owned))).all()
        changed = False
        for interface_id, mac, status, instance_id, state, host_id in due:
            if state not in CHANGEABLE or not self.worker.claim_instance(instance_id):
                continue
            try:
                self._change(interface_id, mac, status, instance_id, host_id)
                changed = True
            except DriverError as error:
                log.warning('cannot %s %s on %s: %s', 'attach' if status == ATTACHING else 'detach',
                            interface_id, instance_id, error)
            finally:
                self.worker.release_instance(instance_id)
        return changed

    def _change(self, interface_id, mac, status, instance_id, host_id):
        driver = self.worker.driver_of(host_id)
        if driver is None:
            return
        if status == ATTACHING:
            spec = self.worker.launch_spec(host_id, driver, instance_id)
            (nic,) = [nic for nic in spec.nics if nic.mac == mac]
            driver.plug_nic(spec, nic)
            values = {'attachment_status': ATTACHED}
        else:
            driver.unplug_nic(instance_id, mac)
            values = {'instance_id': None, 'device_index': None, 'attachment_id': None, 'attached_at': None,
                      'attachment_status': None}
        with self.db.write() as session:
            session.execute(update(InterfaceRow).where(InterfaceRow.interface_id == interface_id,
                                                       InterfaceRow.attachment_status == status).values(**values))
