"""The host-driver interface: the verbs the VM manager needs of any kind of host, named once.

In the spirit of libcloud's `NodeDriver`: the worker, the monitor and CreateImage speak only these
verbs, every kind of host (libvirt hypervisors and simulated hosts today, peer clouds next)
implements them, and `features` says what a kind cannot do so that callers refuse it with a clear
error instead of attempting it. What a driver is handed is a plain `LaunchSpec`, built from the
database by the worker, so no driver ever reads a row.

Domain states are reported in one small vocabulary (`DomainState`), whatever the host calls them.
"""
import abc
import dataclasses
import enum


# Tags whose keys start so are this cloud's own marks on what it keeps elsewhere (a peer cloud's
# instances): never the user's, never mirrored.
OWN_TAG_PREFIX = 'reservoir:'


class DriverError(Exception):
    """The host could not do what was asked: unreachable, or it refused."""


class Feature(str, enum.Enum):
    REBOOT = 'reboot'
    ACPI_SHUTDOWN = 'acpi-shutdown'       # a power button the guest can act on
    CONSOLE = 'console'
    SNAPSHOT = 'snapshot'                 # CreateImage of an instance's root disk
    NIC_HOTPLUG = 'nic-hotplug'           # network interfaces attached to and detached from instances
    DISK_HOTPLUG = 'disk-hotplug'         # volumes attached to and detached from instances
    OWN_LIFECYCLE = 'own-lifecycle'       # a cloud of its own: an instance gone from it was terminated there
    LOCAL_NETWORK = 'local-network'       # instances join this cloud's subnets (leases, elastic IPs, groups)
    MIGRATE = 'migrate'                   # instances move to another host of the same kind


class DomainState(str, enum.Enum):
    RUNNING = 'running'
    PAUSED = 'paused'
    SHUTOFF = 'shutoff'
    CRASHED = 'crashed'
    UNKNOWN = 'nostate'


@dataclasses.dataclass(frozen=True)
class DiskImage:
    """A file of the image repository, as the host reads it."""
    path: str
    disk_format: str = 'qcow2'


@dataclasses.dataclass(frozen=True)
class NicSpec:
    """One network interface: its addresses, and the L2 segment it joins on the host."""
    mac: str
    ip: str
    cidr: str
    gateway: str | None = None
    dns: str | None = None
    bridge: str | None = None
    vlan: int | None = None
    network_key: int | None = None      # the subnet, and the VPC whose router holds its gateway
    vpc_id: str | None = None
    vpc_key: int | None = None
    tap: str | None = None              # the host's name for the NIC's tap device (firewall rules use it)


@dataclasses.dataclass(frozen=True)
class VolumeDisk:
    """A volume as a disk of an instance: its file, where the guest finds it, its I/O limits."""
    volume_id: str
    path: str
    target: str                             # the hypervisor's device name: 'vdf' (virtio), 'xvdf' (Xen)
    iops: int | None = None
    bytes_per_second: int | None = None

    @property
    def serial(self):
        """What the guest reads as the disk's serial number: the volume id without its dash, as on
        AWS's NVMe volumes (20 characters, virtio's limit)."""
        return self.volume_id.replace('-', '')[:20]


@dataclasses.dataclass(frozen=True)
class DiskCopy:
    """A snapshot of an attached volume: the data of `disk` above the file `base` (all of it when
    None) written to the new file `target`."""
    disk: VolumeDisk
    target: str
    base: str | None = None


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """Everything a host needs to run an instance, free of the database."""
    instance_id: str
    image_id: str
    instance_type: str
    vcpus: int
    memory_mib: int
    zone: str
    root: DiskImage | None
    kernel: DiskImage | None = None
    ramdisk: DiskImage | None = None
    nics: tuple = ()                        # (NicSpec, …), eth0 first
    ssh_public_key: str | None = None
    user_data: str | None = None            # base64, as the client sent it
    public_ip: str | None = None
    domain_type: str = 'qemu'               # 'qemu', 'kvm' or 'xen' for hypervisor hosts
    volumes: tuple = ()                     # (VolumeDisk, …) attached to the instance
    reservation_id: str = ''                # the launch it came from, and its place in it: a peer
    launch_index: int = 0                   # cloud launches a reservation's instances together
    tags: tuple = ()                        # ((key, value), …) the instance's tags


@dataclasses.dataclass(frozen=True)
class CloudInstance:
    """An instance as a peer cloud reports it: its state there, the addresses the peer gave it and
    the user's tags it carries there."""
    state: DomainState
    private_ip: str | None = None
    public_ip: str | None = None
    tags: tuple = ()                        # ((key, value), …), this cloud's own marks left out


@dataclasses.dataclass(frozen=True)
class SnapshotTarget:
    """Where CreateImage writes the instance's flattened root disk, and how consistent it must be."""
    path: str
    no_reboot: bool


class HostDriver(abc.ABC):
    """One host. Every verb is idempotent where the worker may repeat it after a crash."""

    features: frozenset = frozenset()
    simulated: bool = False
    # Deploys of one host are handed over together (deploy_many) rather than in the worker's chunks:
    # a peer cloud launches a reservation's instances in one request.
    deploys_together: bool = False

    def supports(self, feature):
        return Feature(feature) in self.features

    @abc.abstractmethod
    def capacity(self):
        """(cpus, memory MiB) the host reports."""

    @abc.abstractmethod
    def deploy(self, spec):
        """Prepare and start the instance; one already running is left running (restart safety)."""

    def deploy_many(self, specs):
        """Deploy several instances: {instance_id: the DriverError that stopped it, or None}."""
        outcomes = {}
        for spec in specs:
            try:
                self.deploy(spec)
                outcomes[spec.instance_id] = None
            except DriverError as error:
                outcomes[spec.instance_id] = error
        return outcomes

    def restore(self, spec):
        """Start again an instance the host lost without being asked (a simulated host whose
        process ended, a host that rebooted); by default, a deploy."""
        self.deploy(spec)

    @abc.abstractmethod
    def reboot(self, instance_id):
        """Restart the guest."""

    @abc.abstractmethod
    def shutdown(self, instance_id):
        """Ask the guest to power off; False when it was not running."""

    @abc.abstractmethod
    def power_off(self, instance_id):
        """Stop the guest at once, keeping its disk and definition."""

    @abc.abstractmethod
    def destroy(self, instance_id):
        """Remove the instance and everything of it from the host."""

    @abc.abstractmethod
    def state(self, instance_id):
        """The instance's DomainState, or None when the host has no such instance."""

    @abc.abstractmethod
    def states(self):
        """{instance_id: DomainState} of every instance on the host, in one call."""

    @abc.abstractmethod
    def console_output(self, instance_id):
        """The tail of the instance's console as bytes (b'' before its first boot)."""

    def report(self):
        """{instance_id: CloudInstance} of a host with a life of its own (Feature.OWN_LIFECYCLE), in
        one call; other hosts report only states."""
        return {instance_id: CloudInstance(state) for instance_id, state in self.states().items()}

    def mirror_tags(self, instance_id, tags, removed_keys):
        """Give the instance on a peer cloud the user's tags `tags` ((key, value), …) and take the
        keys `removed_keys` off it."""
        raise DriverError(f'{type(self).__name__} keeps no tags')

    def plug_nic(self, spec, nic):
        """Give a deployed instance the NIC `nic` (one of `spec.nics`), running or not; its context CD
        is rewritten first so the guest finds the new interface's settings. Idempotent by MAC."""
        raise DriverError(f'{type(self).__name__} cannot add network interfaces')

    def unplug_nic(self, instance_id, mac):
        """Take the NIC with this MAC from a deployed instance; idempotent."""
        raise DriverError(f'{type(self).__name__} cannot remove network interfaces')

    def attach_disk(self, instance_id, disk, domain_type):
        """Give a deployed instance the volume `disk`, running (hot-plugged) or not (at its next
        start). Idempotent by target."""
        raise DriverError(f'{type(self).__name__} cannot attach volumes')

    def detach_disk(self, instance_id, disk, force=False):
        """Take the volume `disk` from a deployed instance; True once it is gone, False while a running
        guest has not let go of it yet (ask again later)."""
        raise DriverError(f'{type(self).__name__} cannot detach volumes')

    def resize_disk(self, instance_id, disk, size_bytes):
        """Grow an attached volume of a running instance, the guest seeing the new size at once; False
        when the instance's domain is not running (its file is then grown while nothing holds it)."""
        raise DriverError(f'{type(self).__name__} cannot grow attached volumes')

    def snapshot_disks(self, instance_id, copies):
        """Snapshot volumes of a running instance at one instant (crash-consistent): pause the guest,
        write each DiskCopy, resume. False when no running guest holds the disks (the caller then
        snapshots their files itself)."""
        raise DriverError(f'{type(self).__name__} cannot snapshot attached volumes')

    def migrate(self, instance_id, target, live, spec):
        """Move the instance to the host `target` (a driver of the same kind): live keeps the guest
        running throughout, cold saves it here and restores it there; `spec` is the instance as it
        will be there (its NICs' taps). Never two copies running; a move repeated after a crash
        finishes what the first began."""
        raise DriverError(f'{type(self).__name__} cannot move instances')

    def relocate(self, instance_id, target, spec, source_lost=False):
        """Move a stopped instance (no guest runs) to the host `target`: its disks copied where the
        target reads them, nothing copied when both read the same files. With `source_lost` this
        host does not answer: only files both hosts share can go, and what is left here is
        forgotten when it answers again. A move repeated after a crash finishes what the first
        began; never two copies, never none."""
        raise DriverError(f'{type(self).__name__} cannot move instances')

    def forget(self, instance_id):
        """Remove the instance's domain and this host's own copies of its disks, leaving files
        it shares with other hosts: the instance lives on elsewhere."""
        raise DriverError(f'{type(self).__name__} cannot move instances')

    def snapshot(self, instance_id, target, stop_timeout):
        """Write the instance's root disk, flattened, to `target.path` (CreateImage)."""
        raise DriverError(f'{type(self).__name__} cannot save an instance as an image')

    def close(self):
        """Drop connections; the host and its instances are left as they are."""
