"""The libvirt host driver: hypervisors (embedded QEMU, qemu:///system, qemu+ssh://, xen://) and
simulated hosts (libvirt's test driver), behind the one `HostDriver` interface.

A deploy puts the instance's disks where the host reads them (`host_storage`: this machine's
files for the local QEMU driver and hosts with shared storage, else volumes in a storage pool on the
host, copied through the libvirt connection), joins its NICs to their bridges, and defines and
starts the domain. Simulated hosts get only a console log, where the driver writes what happened to the
domain, so GetConsoleOutput shows something on them too.

Domains and bridges are named the installation's way (`host_names`), so installations can share a
hypervisor: a domain is `<prefix>-<instance id>`, and a NIC whose network names no bridge of its own
joins the installation's bridge of that network.
"""
import contextlib
import dataclasses
import datetime
import os
import subprocess
import time
import urllib.parse
import uuid

from . import domain_xml
from ..host_names import HostNames
from .base import DomainState, DriverError, Feature, HostDriver
from .host_storage import LocalStorage, PoolStorage
from .libvirt_host import HostError, LibvirtHost

DEFAULT_CMDLINE = 'console=ttyS0 panic=-1 quiet root=/dev/vda'
CONVERT_TIMEOUT_SECONDS = 3600
DETACH_WAIT_SECONDS = 5


class LibvirtDriver(HostDriver):
    features = frozenset({Feature.REBOOT, Feature.ACPI_SHUTDOWN, Feature.CONSOLE, Feature.SNAPSHOT,
                          Feature.NIC_HOTPLUG, Feature.DISK_HOTPLUG, Feature.LOCAL_NETWORK, Feature.MIGRATE})

    def __init__(self, uri, files, network=None, names=HostNames(), shared_storage=None):
        """`files`: where instance files live on this machine; `network`: sets up bridges here;
        `names`: the installation's HostNames; `shared_storage`: where the host sees this machine's
        state directory, if it does."""
        self.uri = uri
        self.names = names
        self.host = LibvirtHost(uri, names)
        self.files = files
        self.network = network
        self.simulated = self.host.simulated
        self.local = uri.startswith(('qemu:///', 'qemu+unix:///'))     # its guests join this machine's bridges
        if self.simulated or shared_storage or uri.startswith(('qemu:///', 'xen:///')):
            self.storage = LocalStorage(files, shared_storage)
        else:
            self.storage = PoolStorage(self.host, names)

    @property
    def label(self):
        return self.uri.rsplit('/', 1)[-1].removesuffix('.xml')

    def capacity(self):
        return self._host(self.host.capacity)

    def deploy(self, spec):
        definition = self._definition(spec)
        self._host(self.host.start, spec.instance_id, domain_xml.build(definition))
        self._note(spec.instance_id, f'simulated host {self.label}: domain {spec.instance_id} started')

    def restore(self, spec):
        """Start again what a simulated host lost when the process that opened it ended."""
        self._host(self.host.start, spec.instance_id, domain_xml.build(self._definition(spec)))
        self._note(spec.instance_id, f'host restarted: domain {spec.instance_id} autostarted')

    def reboot(self, instance_id):
        self._host(self.host.reboot, instance_id)
        self._note(instance_id, f'domain {instance_id} rebooted')

    def shutdown(self, instance_id):
        asked = self._host(self.host.shutdown, instance_id)
        if asked:
            self._note(instance_id, f'domain {instance_id} shut down')
        return asked

    def power_off(self, instance_id):
        self._host(self.host.power_off, instance_id)
        self._note(instance_id, f'domain {instance_id} powered off')

    def destroy(self, instance_id):
        self._host(self.host.remove, instance_id)
        self.storage.remove(instance_id)

    def state(self, instance_id):
        found = self._host(self.host.state, instance_id)
        return None if found is None else DomainState(found)

    def states(self):
        return {name: DomainState(state) for name, state in self._host(self.host.domain_states).items()}

    def console_output(self, instance_id):
        return self.storage.console_output(instance_id)

    def snapshot(self, instance_id, target, stop_timeout):
        """Flatten the overlay and its image into one qcow2, consistent as EC2's CreateImage is:
        a stopped instance as it is; NoReboot pauses the guest (QEMU flushes its disks) and resumes
        it; otherwise the guest is shut down cleanly (powered off after the stop timeout) and started
        again, so its filesystem is clean."""
        if not self.storage.shared:
            raise DriverError(f'images cannot be made of instances on {self.label}, a host without shared storage')
        disk = self.files.disk(instance_id)
        if not disk.exists():
            raise DriverError(f'the disk of {instance_id} is missing')
        if self.state(instance_id) not in (DomainState.RUNNING, DomainState.PAUSED):
            return _flatten(disk, target.path, force_share=False)
        if target.no_reboot:
            self._host(self.host.suspend, instance_id)
            try:
                return _flatten(disk, target.path, force_share=True)
            finally:
                self._host(self.host.resume, instance_id)
        self._wait_down(instance_id, stop_timeout)
        try:
            return _flatten(disk, target.path, force_share=False)
        finally:
            self._host(self.host.boot, instance_id)

    def migrate(self, instance_id, target, live, spec):
        self._check_move(instance_id, target)
        here, there = self.state(instance_id), target.state(instance_id)
        if there in (DomainState.RUNNING, DomainState.PAUSED) or (here is None and there is not None):
            # Already there (a move a crash interrupted): only the copy here, stopped, is left to remove.
            if here is not None:
                self._host(self.host.remove, instance_id)
            self.storage.release(instance_id)
            return
        if here is None:
            raise DriverError(f'{instance_id} is on neither {self.uri} nor {target.uri}')
        taps = {nic.mac.lower(): nic.tap for nic in spec.nics if nic.tap}
        if live and here is DomainState.RUNNING and self.live_migration_to(target):
            self._live_move(instance_id, target, taps, spec)
        else:
            self._cold_move(instance_id, target, here, taps, spec)
        self.storage.release(instance_id)
        self._note(instance_id, f'domain {instance_id} moved from {self.label} to {target.label}')
        target._note(instance_id, f'domain {instance_id} arrived from {self.label}')

    def relocate(self, instance_id, target, spec, source_lost=False):
        self._check_move(instance_id, target)
        if source_lost:
            if not self.shares_storage_with(target):
                raise DriverError(f'the disks of {instance_id} are on {self.label}, which does not answer')
            return          # nothing to copy; its definition here goes when the host answers again
        here, there = self.state(instance_id), target.state(instance_id)
        if here in (DomainState.RUNNING, DomainState.PAUSED):
            raise DriverError(f'{instance_id} runs on {self.label}: only a stopped instance moves so')
        if here is not None:
            self._move_defined(instance_id, target, spec)
        elif there is None and not self.shares_storage_with(target):
            raise DriverError(f'{instance_id} is on neither {self.uri} nor {target.uri}')
        # here is None: moved already (a crash came before the database knew), or a simulated host
        # that forgot its definitions; either way only this host's copies are left to remove.
        self.storage.release(instance_id)
        self._note(instance_id, f'stopped domain {instance_id} moved from {self.label} to {target.label}')

    def forget(self, instance_id):
        self._host(self.host.remove, instance_id)
        self.storage.release(instance_id)

    def _check_move(self, instance_id, target):
        if not isinstance(target, LibvirtDriver) or target.simulated != self.simulated:
            raise DriverError(f'{instance_id} cannot move from {self.uri} to a host of another kind')
        if self.storage.shared != target.storage.shared:
            raise DriverError(f'{instance_id} cannot move between {self.label} and {target.label}: one has '
                              'shared storage, the other not')

    def live_migration_to(self, target):
        """Both hosts are hypervisor daemons (the test driver and embedded QEMU cannot migrate live)."""
        return not self.simulated and not target.simulated and 'embed' not in self.uri and 'embed' not in target.uri

    def shares_storage_with(self, target):
        """Both hosts read this machine's instance files: copying a disk onto the file it is read
        from would destroy it."""
        return self.storage.shared and target.storage.shared

    def migration_uri(self):
        """Where the source's QEMU sends the guest: this host's address (libvirt refuses 127.0.0.1 as
        a configured migration address, so it is given per call)."""
        hostname = urllib.parse.urlsplit(self.uri).hostname
        return f'tcp://{hostname or "127.0.0.1"}'

    def _live_move(self, instance_id, target, taps, spec):
        """migrate3 while the guest runs. Without shared storage the target gets the bases, an empty
        overlay and the context CD at the same paths first, and QEMU copies the overlay's data."""
        running, defined = self._host(self.host.migratable_definition, instance_id)
        copy = not self.shares_storage_with(target)
        try:
            self.storage.send(instance_id, target.storage, spec)
            self._host(self.host.migrate_live, instance_id, target.host, target.migration_uri(), copy,
                       domain_xml.with_taps(running, taps), domain_xml.with_taps(defined, taps))
        except DriverError:
            if target.state(instance_id) is None:
                target.storage.release(instance_id)     # libvirt left it running here
            raise

    def _cold_move(self, instance_id, target, state, taps, spec):
        """Save the guest here, restore it there, then forget it here; a stopped domain is only
        defined there. Without shared storage, the overlay (and the saved guest) are copied to the
        target first. The save file is removed as soon as it is restored: restored twice, it would
        give two copies."""
        if state not in (DomainState.RUNNING, DomainState.PAUSED):
            self._move_defined(instance_id, target, spec)
            return
        running, defined = self._host(self.host.migratable_definition, instance_id)
        persistent = domain_xml.with_taps(defined, taps)
        disk = ('disk.qcow2',) if spec.root else ()
        saved = self.storage.save_path(instance_id)
        self._host(self.host.save, instance_id, saved)
        # Simulated domains have no taps to rename (their NICs join no bridge).
        renamed = domain_xml.with_taps(running, taps) if taps and not self.simulated else None
        try:
            self.storage.send(instance_id, target.storage, spec, (*disk, 'migration.save'))
            self._host(target.host.restore, saved, renamed, persistent)
        except DriverError:
            self._host(self.host.restore, saved)   # it runs where it was, as it was
            if target.state(instance_id) is None:
                target.storage.release(instance_id)
            raise
        finally:
            self.storage.drop_saved(instance_id)
            if target.storage is not self.storage:
                target.storage.drop_saved(instance_id)
        self._host(self.host.remove, instance_id)

    def _move_defined(self, instance_id, target, spec):
        """Move a domain that is defined here and not running: its overlay copied (unless both
        hosts read the same files), the target given the rest and its definition (its NICs' taps
        as they will be there), then removed here. Repeated after a crash, the copy here, still
        whole, is copied again: the target's is never the only one until this one is gone."""
        _, defined = self._host(self.host.migratable_definition, instance_id)
        taps = {nic.mac.lower(): nic.tap for nic in spec.nics if nic.tap}
        try:
            self.storage.send(instance_id, target.storage, spec, ('disk.qcow2',) if spec.root else ())
            self._host(target.host.define, domain_xml.with_taps(defined, taps))
        except DriverError:
            with contextlib.suppress(DriverError):
                target.forget(instance_id)      # undone: the copy here is whole and stays the only one
            raise
        self._host(self.host.remove, instance_id)

    def plug_nic(self, spec, nic):
        definition = self._host(self.host.definition, spec.instance_id)
        if definition is None:
            raise DriverError(f'{spec.instance_id} is not on {self.uri}')
        if nic.mac.lower() in domain_xml.interface_macs(definition):
            return
        if self.simulated:
            # The test driver keeps no devices to plug; what happened goes on the console, as for its other verbs.
            self._note(spec.instance_id, f'nic {nic.mac} plugged into domain {spec.instance_id}')
            return
        nic = self._on_bridge(nic)
        if self.local and self.network is not None:
            self.network.ensure_segment(nic)
        iso = self.storage.prepare(spec).context_iso
        self._host(self.host.change_device, spec.instance_id, domain_xml.context_cdrom(iso, spec.domain_type),
                   'update')
        self._host(self.host.change_device, spec.instance_id,
                   domain_xml.interface(domain_xml.Nic(nic.mac, nic.bridge, nic.tap), spec.domain_type), 'attach')

    def unplug_nic(self, instance_id, mac):
        if self.simulated:
            self._note(instance_id, f'nic {mac} unplugged from domain {instance_id}')
            return
        definition = self._host(self.host.definition, instance_id)
        element = None if definition is None else domain_xml.interface_with_mac(definition, mac)
        if element is not None:
            self._host(self.host.change_device, instance_id, element, 'detach')

    def attach_disk(self, instance_id, disk, domain_type):
        definition = self._host(self.host.definition, instance_id)
        if definition is None:
            raise DriverError(f'{instance_id} is not on {self.uri}')
        if self.simulated:
            self._note(instance_id, f'volume {disk.volume_id} attached to domain {instance_id} as {disk.target}')
            return
        if disk.target in domain_xml.disk_targets(definition):
            return
        if not self.storage.shared:
            raise DriverError(f'volumes cannot be attached to instances on {self.label}, a host without shared '
                              'storage')
        self._host(self.host.change_device, instance_id, domain_xml.volume_disk(disk, domain_type), 'attach')

    def detach_disk(self, instance_id, disk, force=False):
        if self.simulated:
            self._note(instance_id, f'volume {disk.volume_id} detached from domain {instance_id}')
            return True
        definition = self._host(self.host.definition, instance_id)
        if definition is None or disk.target not in domain_xml.disk_targets(definition):
            return True
        # A running guest lets go of a hot-plugged disk in its own time: look again for a few seconds,
        # then leave the volume 'detaching' for the next round.
        self._host(self.host.change_device, instance_id, domain_xml.volume_disk(disk, 'qemu'), 'detach')
        deadline = time.monotonic() + DETACH_WAIT_SECONDS
        while time.monotonic() < deadline:
            definition = self._host(self.host.definition, instance_id)
            if definition is None or disk.target not in domain_xml.disk_targets(definition):
                return True
            time.sleep(0.2)
        return False

    def resize_disk(self, instance_id, disk, size_bytes):
        if self.simulated:
            self._note(instance_id, f'volume {disk.volume_id} grown to {size_bytes} bytes')
            return False
        return self._host(self.host.resize_block, instance_id, disk.target, size_bytes)

    def snapshot_disks(self, instance_id, copies):
        if self.simulated or self.state(instance_id) not in (DomainState.RUNNING, DomainState.PAUSED):
            return False
        # Paused, QEMU has flushed every write to the files: what is copied is what the guest wrote.
        paused_here = self.state(instance_id) is DomainState.RUNNING
        if paused_here:
            self._host(self.host.suspend, instance_id)
        try:
            for copy in copies:
                _copy_above(copy.disk.path, copy.target, copy.base)
        finally:
            if paused_here:
                self._host(self.host.resume, instance_id)
        return True

    def close(self):
        self.host.close()

    # -- helpers -------------------------------------------------------------------------------------

    def _definition(self, spec):
        name = self.names.domain(spec.instance_id)
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f'reservoir:{name}'))
        common = dict(name=name, uuid=uid, domain_type=spec.domain_type, vcpus=spec.vcpus,
                      memory_mib=spec.memory_mib, description=f'Reservoir instance {spec.instance_id}')
        if self.simulated:
            self.files.directory(spec.instance_id).mkdir(parents=True, exist_ok=True)
            return domain_xml.DomainSpec(**common, nics=tuple(domain_xml.Nic(nic.mac) for nic in spec.nics))
        nics = tuple(self._on_bridge(nic) for nic in spec.nics)
        if self.local and self.network is not None:
            for nic in nics:
                self.network.ensure_segment(nic)
        placed = self.storage.prepare(spec)
        return domain_xml.DomainSpec(
            **common, disk=placed.disk, backing=placed.backing, kernel=placed.kernel, initrd=placed.initrd,
            cmdline=DEFAULT_CMDLINE if spec.kernel else None, context_iso=placed.context_iso,
            nics=tuple(domain_xml.Nic(nic.mac, nic.bridge, nic.tap) for nic in nics),
            console_log=placed.console_log, volumes=placed.volumes)

    def _on_bridge(self, nic):
        """The NIC with its bridge named: the one its network names, else the installation's."""
        if nic.bridge is None and nic.network_key is not None:
            return dataclasses.replace(nic, bridge=self.names.bridge(nic.network_key))
        return nic

    def _wait_down(self, instance_id, timeout):
        if not self.shutdown(instance_id):
            return
        deadline = time.monotonic() + timeout
        while self.state(instance_id) in (DomainState.RUNNING, DomainState.PAUSED):
            if time.monotonic() >= deadline:
                self.power_off(instance_id)
                return
            time.sleep(0.25)

    def _note(self, instance_id, line):
        if self.simulated:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S')
            self.files.note(instance_id, f'[{stamp}] {line}')

    @staticmethod
    def _host(operation, *args):
        try:
            return operation(*args)
        except HostError as error:
            raise DriverError(str(error)) from None


def _flatten(disk, target, force_share):
    """`qemu-img convert` of the overlay and its backing chain into one standalone qcow2."""
    _convert([*(['-U'] if force_share else []), '--', str(disk), str(target)], 'the disk')


def _copy_above(disk, target, base):
    """The data of `disk` above its backing file `base` as a new qcow2 overlay of `base` (all of the
    disk, standalone, when `base` is None); written beside `target` and renamed once whole."""
    partial = f'{target}.partial'
    above = ['-B', base, '-F', 'qcow2'] if base else []
    _convert(['-U', *above, '--', str(disk), partial], 'the volume')
    os.replace(partial, target)


def _convert(arguments, what):
    command = ['qemu-img', 'convert', '-O', 'qcow2', *arguments]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DriverError(f'cannot copy {what}: {error}') from None
    if result.returncode != 0:
        raise DriverError(f'qemu-img convert failed: {result.stderr.strip()}')
