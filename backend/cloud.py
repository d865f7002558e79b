"""The VM manager as one object: configuration, database and the services built on them."""
import datetime

from .networking.addresses import AddressService
from .capacity_history import CapacityHistory
from .catalog import Catalog
from .certificates import CertificateService
from .compute.fencing import Fencing
from .compute.migration import MigrationService
from .config import load_config
from .db import Database
from .drivers.instance_files import InstanceFiles
from .hosts import HostService
from .image_lifetimes import load_limits
from .images import ImageRepository, ImageService
from .instances import InstanceService
from .keypairs import KeyPairService
from .launch_history import LaunchHistory
from .networking.gateways import GatewayService
from .networking.interfaces import InterfaceService
from .networking.networks import NetworkService
from .networking.security_groups import SecurityGroupService
from .networking.subnets import SubnetService
from .networking.vpcs import VpcService
from .placement_failures import PlacementFailures
from .placement_groups import PlacementGroupService
from .quotas import QuotaService, load_defaults as load_quota_defaults
from .resource_pool import ResourcePool
from .snapshots import SnapshotService
from .storage.volume_files import VolumeFiles
from .storage.snapshots import SnapshotService as VolumeSnapshotService
from .storage.volumes import VolumeService
from .tags import TagService
from .uploads import UploadService
from .users import UserService
from .networking.host_network import installation_digest
from .peers import PeerService
from .vault import Vault


class Cloud:
    def __init__(self, config, db):
        self.config = config
        self.db = db
        self.worker = None
        compute = config.compute
        self.vault = Vault(config.secret_key_path)
        self.users = UserService(db, self.vault)
        self.certificates = CertificateService(db, self.vault, config.home)   # for SOAP's WS-Security
        self.keypairs = KeyPairService(db)
        limits = load_limits(config)
        self.quotas = QuotaService(db, load_quota_defaults(config, limits.account_quota))
        self.images = ImageService(db, ImageRepository(config.images_dir), limits, self.quotas.defaults)
        self.uploads = UploadService(db, config.home / 'uploads', self.images)
        self.catalog = Catalog(config)
        self.hosts = HostService(db, config)
        # EC2 clouds as hosts; what this cloud runs there is tagged with a digest of its state directory.
        self.peers = PeerService(db, self.hosts, self.vault, config.instance_types,
                                 installation=installation_digest(str(config.home))[:12])
        self.networks = NetworkService(db, config)
        self.networks.ensure_defaults(compute.public_pool)
        self.vpcs = VpcService(db, config.zones)
        self.subnets = SubnetService(db, self.vpcs, config.zones)
        self.interfaces = InterfaceService(db, self.networks, wake_workers=self._wake_worker,
                                           groups_per_interface=config.security_groups.groups_per_interface)
        self.gateways = GatewayService(db, wake_workers=self._wake_worker)
        self.security_groups = SecurityGroupService(db, self.vpcs, config.security_groups,
                                                    wake_workers=self._wake_worker)
        volume_files = VolumeFiles(config.home / 'volumes', config.home / 'snapshots')
        self.volumes = VolumeService(db, volume_files, config.zones, self.quotas.defaults,
                                     wake_workers=self._wake_worker)
        self.volume_snapshots = VolumeSnapshotService(db, volume_files, wake_workers=self._wake_worker)
        # What administrators look back on: the scheduler's refusals, launches, capacity over time.
        self.placement_failures = PlacementFailures(db)
        self.launch_history = LaunchHistory(db, config.monitor.history_seconds)
        self.capacity_history = CapacityHistory(db, config.monitor)
        self.instances = InstanceService(
            db, config, self.networks, self.vpcs, wake_workers=self._wake_worker, policy=compute.scheduler_policy,
            terminated_retention=datetime.timedelta(seconds=compute.terminated_retention_seconds),
            max_launch=compute.max_launch, quotas=self.quotas.defaults, volumes=self.volumes,
            failures=self.placement_failures)
        self.tags = TagService(db)
        self.migrations = MigrationService(db, policy=compute.scheduler_policy, wake_workers=self._wake_worker)
        self.fencing = Fencing(db, compute.fence_after_seconds, compute.scheduler_policy, self._wake_worker)
        self.addresses = AddressService(db, wake_workers=self._wake_worker, quotas=self.quotas.defaults)
        self.placement_groups = PlacementGroupService(db)
        self.pool = ResourcePool(db, self.hosts, self.migrations, self.quotas.defaults)   # administrators' view
        # Consoles of instances on this machine's hosts, which the workers write beside their disks.
        self.instance_files = InstanceFiles(config.home / 'instances')
        self.snapshots = SnapshotService(db, self.images, config.home, wake_workers=self._wake_worker,   # CreateImage
                                         volume_snapshots=self.volume_snapshots)

    @classmethod
    def open(cls, config=None):
        """Open the cloud described by `config` (default: the environment's), migrating its database."""
        config = config or load_config()
        # The state directory holds the vault key and every image: its owner's alone.
        config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(config, Database.open(config.database_url))

    def start_worker(self):
        """Run the worker and monitor threads in this process (the embedded default)."""
        from .worker import Worker
        if self.worker is None:
            self.worker = Worker(self)
            self.worker.start()
        return self.worker

    def console_output(self, owner, instance_id):
        """GetConsoleOutput: the instance's serial console (64 KiB tail) as bytes; a peer cloud's
        instance's as that peer gives it."""
        (instance,) = self.instances.describe(owner, ids=[instance_id])   # ownership and existence
        found = None
        if instance.host_name:
            found = self.peers.console_output(instance.host_name, instance_id)
            if found is None:       # a host without shared storage keeps the console in its pool
                found = self.hosts.console_output(instance.host_name, instance_id, self.instance_files,
                                                  self.config.host_names)
        return self.instance_files.console_output(instance_id) if found is None else found

    def _wake_worker(self):
        if self.worker is not None:
            self.worker.wake()

    def after_fork(self):
        """In a forked worker process: open new database connections instead of sharing the parent's."""
        self.db.after_fork()

    def close(self):
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *_exc_info):
        self.close()
