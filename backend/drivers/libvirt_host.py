"""One libvirt host: a connection plus the few domain operations the VM manager needs.

Works for every libvirt URI: `qemu:///embed?root=…` (no daemon; needs an event loop),
`qemu:///system`, `qemu+ssh://…`, `xen://…`, and `test:///…/node.xml`, which is a fresh
in-memory host on every open — so the connection object *is* the simulated host, and this class
keeps exactly one per host.

Domains are addressed by instance id and named the installation's way on the host (`host_names`):
other installations' domains are neither reported nor touched. A domain an earlier version named by
the bare instance id is still found; stopped, it is replaced by the new definition when started.
"""
import logging
import re
import threading

import libvirt

from ..host_names import HostNames

log = logging.getLogger(__name__)

# libvirt prints every error to stderr by default; errors reach us as exceptions anyway.
libvirt.registerErrorHandler(lambda _context, _error: None, None)

_event_loop_lock = threading.Lock()
_event_loop_started = False

_STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: 'nostate',
    libvirt.VIR_DOMAIN_RUNNING: 'running',
    libvirt.VIR_DOMAIN_BLOCKED: 'running',
    libvirt.VIR_DOMAIN_PAUSED: 'paused',
    libvirt.VIR_DOMAIN_SHUTDOWN: 'running',   # shutting down: still there
    libvirt.VIR_DOMAIN_SHUTOFF: 'shutoff',
    libvirt.VIR_DOMAIN_CRASHED: 'crashed',
    libvirt.VIR_DOMAIN_PMSUSPENDED: 'paused',
}


# How domains were named before they carried the installation's prefix.
LEGACY_NAME = re.compile(r'i-[0-9a-f]+')


class HostError(Exception):
    """The host could not do what was asked (unreachable, or libvirt refused)."""


def _ensure_event_loop():
    """The embedded QEMU driver needs libvirt's event loop running before any open."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, name='libvirt-events', daemon=True)
        thread.start()
        _event_loop_started = True


def _run_event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


class LibvirtHost:
    def __init__(self, uri, names=HostNames()):
        self.uri = uri
        self.names = names
        self._connection = None
        self._lock = threading.RLock()

    @property
    def simulated(self):
        return self.uri.startswith('test://')

    def connection(self):
        with self._lock:
            if self._connection is None or not self._is_alive():
                self._connection = self._open()
            return self._connection

    def _open(self):
        if self.uri.startswith('qemu:///embed'):
            _ensure_event_loop()
        try:
            return libvirt.open(self.uri)
        except libvirt.libvirtError as error:
            raise HostError(f'cannot connect to {self.uri}: {error.get_error_message()}') from None

    def _is_alive(self):
        try:
            return self._connection.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def close(self):
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.close()
                except libvirt.libvirtError:
                    pass
                self._connection = None

    def capacity(self):
        """(cpus, memory MiB) the host reports."""
        info = self._call(lambda c: c.getInfo())
        return info[2], info[1]

    def start(self, instance_id, domain_xml):
        """Define and start a domain; starting one that already runs is not an error (restart safety)."""
        def start(connection):
            domain = self._domain(connection, instance_id)
            if domain is not None and domain.name() != self.names.domain(instance_id) and domain.isActive() != 1:
                domain.undefine()       # named by an earlier version: defined again under the new name
                domain = None
            if domain is None:
                domain = connection.defineXML(domain_xml)
            if domain.isActive() != 1:
                domain.create()
        self._call(start)

    def shutdown(self, instance_id):
        """Ask the guest to power off (ACPI). Returns False if the domain is not running."""
        def shutdown(connection):
            domain = self._domain(connection, instance_id)
            if domain is None or domain.isActive() != 1:
                return False
            domain.shutdown()
            return True
        return self._call(shutdown)

    def power_off(self, instance_id):
        """Pull the plug, keep the definition."""
        def power_off(connection):
            domain = self._domain(connection, instance_id)
            if domain is not None and domain.isActive() == 1:
                domain.destroy()
        self._call(power_off)

    def reboot(self, instance_id):
        def reboot(connection):
            domain = self._domain(connection, instance_id)
            if domain is None:
                raise HostError(f'domain {instance_id} is not on {self.uri}')
            domain.reboot(0)
        self._call(reboot)

    def suspend(self, instance_id):
        self._call(lambda connection: self._existing(connection, instance_id).suspend())

    def resume(self, instance_id):
        self._call(lambda connection: self._existing(connection, instance_id).resume())

    def boot(self, instance_id):
        """Start a defined domain that is shut off."""
        def boot(connection):
            domain = self._existing(connection, instance_id)
            if domain.isActive() != 1:
                domain.create()
        self._call(boot)

    def remove(self, instance_id):
        """Destroy and undefine: after this nothing of the domain is left on the host."""
        def remove(connection):
            domain = self._domain(connection, instance_id)
            if domain is None:
                return
            if domain.isActive() == 1:
                domain.destroy()
            domain.undefine()
        self._call(remove)

    def change_device(self, instance_id, xml, how):
        """Attach, detach or update (`how`) a device, in the running domain and in its definition.
        Returns False when the host has no such domain."""
        def change(connection):
            domain = self._domain(connection, instance_id)
            if domain is None:
                return False
            flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if domain.isActive() == 1:
                flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
            {'attach': domain.attachDeviceFlags, 'detach': domain.detachDeviceFlags,
             'update': domain.updateDeviceFlags}[how](xml, flags)
            return True
        return self._call(change)

    def resize_block(self, instance_id, target, size_bytes):
        """Grow a disk of a running domain; False when the domain does not run."""
        def resize(connection):
            domain = self._domain(connection, instance_id)
            if domain is None or domain.isActive() != 1:
                return False
            domain.blockResize(target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
            return True
        return self._call(resize)

    def definition(self, instance_id):
        """The domain's XML as it runs (or as defined), or None when the host has no such domain."""
        def definition(connection):
            domain = self._domain(connection, instance_id)
            return None if domain is None else domain.XMLDesc(0)
        return self._call(definition)

    def state(self, instance_id):
        """'running', 'shutoff', 'paused', 'crashed' … or None when the host has no such domain."""
        def state(connection):
            domain = self._domain(connection, instance_id)
            return None if domain is None else _STATE_NAMES.get(domain.state()[0], 'nostate')
        return self._call(state)

    def domain_states(self):
        """{instance id: state} of every domain of the installation on the host, in one call."""
        def states(connection):
            found = {}
            for domain in connection.listAllDomains():
                instance_id = self._instance_of(domain.name())
                if instance_id is not None:
                    found.setdefault(instance_id, _STATE_NAMES.get(domain.state()[0], 'nostate'))
            return found
        return self._call(states)

    def save(self, instance_id, path):
        """Stop a running domain, its memory written to `path`; its definition stays."""
        self._call(lambda connection: self._existing(connection, instance_id).save(path))

    def restore(self, path, running_xml=None, persistent_xml=None):
        """Start a domain from a saved image, as `running_xml` describes it when given (its taps
        renamed: the test driver cannot, and needs not), and define it as `persistent_xml` (a restored
        domain is transient until defined; a domain restored where it is defined stays so)."""
        def restore(connection):
            connection.restoreFlags(path, running_xml, 0)
            if persistent_xml:
                connection.defineXML(persistent_xml)
        self._call(restore)

    def migratable_definition(self, instance_id):
        """The running domain's XML as a destination host may be given it, and its persistent
        definition: (running, defined), both migratable."""
        def definitions(connection):
            domain = self._existing(connection, instance_id)
            return (domain.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_SECURE),
                    domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_MIGRATABLE
                                   | libvirt.VIR_DOMAIN_XML_SECURE))
        return self._call(definitions)

    def define(self, domain_xml):
        self._call(lambda connection: connection.defineXML(domain_xml))

    def migrate_live(self, instance_id, target, migration_uri, copy_storage, destination_xml=None,
                     persistent_xml=None):
        """Move a running domain to the host `target` (a LibvirtHost) while it runs, as
        `destination_xml` describes it there; it is defined there (as `persistent_xml`) and undefined
        here once the move completes."""
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
                 | libvirt.VIR_MIGRATE_AUTO_CONVERGE)
        if copy_storage:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
        else:
            # The files are shared because both hosts are daemons of one machine, which libvirt cannot
            # tell from a shared file system: it would refuse the move as unsafe.
            flags |= libvirt.VIR_MIGRATE_UNSAFE
        params = {libvirt.VIR_MIGRATE_PARAM_URI: migration_uri} if migration_uri else {}
        if destination_xml:
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = destination_xml
        if persistent_xml:
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = persistent_xml
        destination = target.connection()
        self._call(lambda connection: self._existing(connection, instance_id).migrate3(destination, params, flags))

    def call(self, operation):
        """Run `operation(connection)`, libvirt's errors raised as HostError (the storage pool's
        verbs, say, which live beside this module)."""
        return self._call(operation)

    def _call(self, operation):
        with self._lock:
            try:
                return operation(self.connection())
            except libvirt.libvirtError as error:
                raise HostError(f'{self.uri}: {error.get_error_message()}') from None

    def _domain(self, connection, instance_id):
        """The instance's domain: named the installation's way, else by an earlier version's name."""
        domain = _lookup(connection, self.names.domain(instance_id))
        if domain is None and LEGACY_NAME.fullmatch(instance_id):
            domain = _lookup(connection, instance_id)
        return domain

    def _existing(self, connection, instance_id):
        domain = self._domain(connection, instance_id)
        if domain is None:
            raise HostError(f'domain {self.names.domain(instance_id)} is not on {self.uri}')
        return domain

    def _instance_of(self, domain_name):
        """The instance a domain runs, if it is the installation's (or an earlier version's)."""
        instance_id = self.names.instance_of(domain_name)
        if instance_id is None and LEGACY_NAME.fullmatch(domain_name):
            return domain_name
        return instance_id


def _lookup(connection, name):
    try:
        return connection.lookupByName(name)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise
