"""Domain XML is escaped and valid against libvirt's own schema, for QEMU/KVM and for Xen."""
import os
import uuid

import pytest
from lxml import etree

from backend.drivers.domain_xml import DomainSpec, Nic, build

SCHEMA = '/usr/share/libvirt/schemas/domain.rng'


@pytest.fixture(scope='module')
def schema():
    if not os.path.exists(SCHEMA):
        pytest.skip('libvirt schemas are not installed (make install installs libvirt)')
    return etree.RelaxNG(etree.parse(SCHEMA))


def spec(**overrides):
    values = dict(name='i-0123456789abcdef0', uuid=str(uuid.uuid4()), domain_type='qemu', vcpus=1,
                  memory_mib=128, disk='/var/lib/r/i.qcow2', backing='/var/lib/r/ami.qcow2',
                  kernel='/var/lib/r/vmlinux', initrd='/var/lib/r/initrd.img',
                  cmdline='console=ttyS0 root=/dev/vda', context_iso='/var/lib/r/ctx.iso',
                  nics=(Nic('02:00:0a:00:00:05', 'rsv-br0'),), console_log='/var/lib/r/console.log')
    values.update(overrides)
    return DomainSpec(**values)


@pytest.mark.parametrize('domain_type', ['qemu', 'kvm', 'xen'])
def test_valid_against_libvirt_schema(schema, domain_type):
    document = etree.fromstring(build(spec(domain_type=domain_type)))
    assert schema.validate(document), schema.error_log


def test_xen_hvm_without_kernel_is_valid(schema):
    document = etree.fromstring(build(spec(domain_type='xen', kernel=None, initrd=None, cmdline=None)))
    assert schema.validate(document), schema.error_log


def test_values_are_escaped():
    document = etree.fromstring(build(spec(description="<script>&'\"")))
    assert document.findtext('description') == "<script>&'\""


def test_overlay_names_its_backing_file_and_cd_is_read_only():
    document = etree.fromstring(build(spec()))
    disk = document.find("devices/disk[@device='disk']")
    assert disk.find('backingStore/source').get('file') == '/var/lib/r/ami.qcow2'
    assert document.find("devices/disk[@device='cdrom']/readonly") is not None
    assert document.find('devices/serial/source').get('path') == '/var/lib/r/console.log'
