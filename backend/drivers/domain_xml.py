"""Libvirt domain XML for an instance, built with lxml so every value is escaped.

One builder serves KVM/QEMU (TCG when there is no usable KVM) and Xen. The shape follows what boots
tiny guests fast under TCG: i440fx machine, direct kernel boot when the image has a kernel, virtio
disk and NIC, the context CD on IDE, the serial console captured to a file for GetConsoleOutput.
"""
import dataclasses

from lxml import etree


@dataclasses.dataclass(frozen=True)
class Nic:
    mac: str
    bridge: str | None = None      # None: a NIC with no link on the host (simulated hosts)
    tap: str | None = None         # the tap device's name on the host; libvirt picks one when None


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    domain_type: str               # 'qemu', 'kvm' or 'xen'
    vcpus: int
    memory_mib: int
    disk: str | None = None        # absolute path of the instance's qcow2 overlay
    backing: str | None = None     # absolute path of the image the overlay is based on
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    context_iso: str | None = None
    nics: tuple = ()
    console_log: str | None = None
    description: str | None = None
    tcg_cache_mib: int | None = 32  # smaller translation cache: ~30 MB less RSS per TCG guest
    volumes: tuple = ()            # (base.VolumeDisk, …): attached volumes


def build(spec):
    """The domain XML document (str) for a spec."""
    if spec.domain_type == 'xen':
        return _serialize(_xen_domain(spec))
    return _serialize(_qemu_domain(spec))


def interface(nic, domain_type):
    """One NIC's <interface> element (str), for hot-plugging into a running domain."""
    holder = etree.Element('devices')
    _interface(holder, nic, model=None if domain_type == 'xen' else 'virtio')
    return _serialize(holder[0])


def volume_disk(disk, domain_type):
    """A volume's <disk> element (str), for attaching it to a domain or detaching it."""
    holder = etree.Element('devices')
    _volume_disk(holder, disk, 'xen' if domain_type == 'xen' else 'virtio')
    return _serialize(holder[0])


def disk_targets(document):
    """The target device names of a domain XML document's disks."""
    root = etree.fromstring(document.encode() if isinstance(document, str) else document)
    return {target.get('dev') for target in root.iterfind('./devices/disk/target')}


def context_cdrom(path, domain_type):
    """The context CD's <disk> element (str), for changing its medium while the domain runs."""
    holder = etree.Element('devices')
    if domain_type == 'xen':
        _context_cdrom(holder, path, bus='xen', target='xvdc')
    else:
        _context_cdrom(holder, path, bus='ide', target='hdc')
    return _serialize(holder[0])


def interface_with_mac(document, mac):
    """The domain's <interface> element (str) with this MAC address, or None."""
    root = etree.fromstring(document.encode() if isinstance(document, str) else document)
    for element in root.iterfind('./devices/interface'):
        found = element.find('mac')
        if found is not None and found.get('address', '').lower() == mac.lower():
            return _serialize(element)
    return None


def interface_macs(document):
    """The MAC addresses of a domain XML document's interfaces."""
    root = etree.fromstring(document.encode() if isinstance(document, str) else document)
    return {mac.get('address').lower() for mac in root.iterfind('./devices/interface/mac')}


def with_taps(document, taps):
    """The domain XML with each interface's tap named as `taps` ({mac: tap name}) says: what it is
    given on the host it moves to."""
    root = etree.fromstring(document.encode() if isinstance(document, str) else document)
    for element in root.iterfind('./devices/interface'):
        mac = element.find('mac')
        tap = taps.get(mac.get('address', '').lower()) if mac is not None else None
        if tap:
            target = element.find('target')
            if target is None:
                target = etree.SubElement(element, 'target')
            target.set('dev', tap)
    return _serialize(root)


def _serialize(root):
    return etree.tostring(root, pretty_print=True, encoding='unicode')


def _sub(parent, tag, text=None, **attributes):
    element = etree.SubElement(parent, tag, {key.rstrip('_'): str(value) for key, value in attributes.items()})
    if text is not None:
        element.text = str(text)
    return element


def _common(spec):
    root = etree.Element('domain', type=spec.domain_type)
    _sub(root, 'name', spec.name)
    _sub(root, 'uuid', spec.uuid)
    if spec.description:
        _sub(root, 'description', spec.description)
    _sub(root, 'memory', spec.memory_mib, unit='MiB')
    _sub(root, 'vcpu', spec.vcpus)
    return root


def _qemu_domain(spec):
    root = _common(spec)
    os_element = _sub(root, 'os')
    _sub(os_element, 'type', 'hvm', arch='x86_64', machine='pc')
    _kernel_boot(os_element, spec)
    if not spec.kernel:
        _sub(os_element, 'boot', dev='hd')
    features = _sub(root, 'features')
    _sub(features, 'acpi')
    if spec.domain_type == 'qemu' and spec.tcg_cache_mib:
        tcg = _sub(features, 'tcg')
        _sub(tcg, 'tb-cache', spec.tcg_cache_mib, unit='MiB')
    _lifecycle_actions(root)
    devices = _sub(root, 'devices')
    if spec.disk:
        _qcow2_disk(devices, spec)
    if spec.context_iso:
        _context_cdrom(devices, spec.context_iso, bus='ide', target='hdc')
    for disk in spec.volumes:
        _volume_disk(devices, disk, 'virtio')
    for nic in spec.nics:
        _interface(devices, nic, model='virtio')
    _serial_console(devices, spec.console_log)
    return root


def _xen_domain(spec):
    root = _common(spec)
    os_element = _sub(root, 'os')
    _sub(os_element, 'type', 'linux' if spec.kernel else 'hvm', arch='x86_64',
         **({} if spec.kernel else {'machine': 'xenfv'}))
    _kernel_boot(os_element, spec)
    _lifecycle_actions(root)
    devices = _sub(root, 'devices')
    if spec.disk:
        disk = _sub(devices, 'disk', type='file', device='disk')
        _sub(disk, 'driver', name='qemu', type='qcow2')
        _sub(disk, 'source', file=spec.disk)
        _sub(disk, 'target', dev='xvda', bus='xen')
    if spec.context_iso:
        _context_cdrom(devices, spec.context_iso, bus='xen', target='xvdc')
    for disk in spec.volumes:
        _volume_disk(devices, disk, 'xen')
    for nic in spec.nics:
        _interface(devices, nic, model=None)
    _sub(devices, 'console', type='pty')
    return root


def _kernel_boot(os_element, spec):
    if spec.kernel:
        _sub(os_element, 'kernel', spec.kernel)
        if spec.initrd:
            _sub(os_element, 'initrd', spec.initrd)
        if spec.cmdline:
            _sub(os_element, 'cmdline', spec.cmdline)


def _lifecycle_actions(root):
    # A guest that powers off or crashes stays down: the monitor reports it as stopped.
    _sub(root, 'on_poweroff', 'destroy')
    _sub(root, 'on_reboot', 'restart')
    _sub(root, 'on_crash', 'destroy')


def _qcow2_disk(devices, spec):
    disk = _sub(devices, 'disk', type='file', device='disk')
    _sub(disk, 'driver', name='qemu', type='qcow2')
    _sub(disk, 'source', file=spec.disk)
    if spec.backing:
        store = _sub(disk, 'backingStore', type='file')
        _sub(store, 'format', type='qcow2')
        _sub(store, 'source', file=spec.backing)
    _sub(disk, 'target', dev='vda', bus='virtio')


def _volume_disk(devices, disk, bus):
    element = _sub(devices, 'disk', type='file', device='disk')
    _sub(element, 'driver', name='qemu', type='qcow2', discard='unmap')
    _sub(element, 'source', file=disk.path)
    _sub(element, 'target', dev=disk.target, bus=bus)
    if disk.iops or disk.bytes_per_second:
        # The volume type's performance, enforced by QEMU's throttling.
        iotune = _sub(element, 'iotune')
        if disk.bytes_per_second:
            _sub(iotune, 'total_bytes_sec', disk.bytes_per_second)
        if disk.iops:
            _sub(iotune, 'total_iops_sec', disk.iops)
    _sub(element, 'serial', disk.serial)


def _context_cdrom(devices, path, bus, target):
    cdrom = _sub(devices, 'disk', type='file', device='cdrom')
    _sub(cdrom, 'driver', name='qemu', type='raw')
    _sub(cdrom, 'source', file=path)
    _sub(cdrom, 'target', dev=target, bus=bus)
    _sub(cdrom, 'readonly')


def _interface(devices, nic, model):
    if nic.bridge:
        interface = _sub(devices, 'interface', type='bridge')
        _sub(interface, 'source', bridge=nic.bridge)
    else:
        interface = _sub(devices, 'interface', type='ethernet')
    _sub(interface, 'mac', address=nic.mac)
    if nic.bridge and nic.tap:
        _sub(interface, 'target', dev=nic.tap)
    if model:
        _sub(interface, 'model', type=model)


def _serial_console(devices, console_log):
    if console_log:
        serial = _sub(devices, 'serial', type='file')
        _sub(serial, 'source', path=console_log)
    else:
        serial = _sub(devices, 'serial', type='pty')
    _sub(serial, 'target', port=0)
    console = _sub(devices, 'console', type='file' if console_log else 'pty')
    if console_log:
        _sub(console, 'source', path=console_log)
    _sub(console, 'target', type='serial', port=0)
