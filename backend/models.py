"""The tables of the VM manager, as SQLAlchemy declarative models.

Resources are keyed by their EC2 ids (`ami-…`, `key-…`), so the ids clients see are the ones the
database joins on. Every schema change comes with a migration in `migrations/versions/`.
"""
import datetime
import re
import secrets

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, MetaData, String, Text,
                        TypeDecorator, UniqueConstraint, false, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints let later migrations alter them, which SQLite can only do by rebuilding tables.
NAMING_CONVENTION = {
    'ix': 'ix_%(table_name)s_%(column_0_N_name)s',
    'uq': 'uq_%(table_name)s_%(column_0_N_name)s',
    'ck': 'ck_%(table_name)s_%(constraint_name)s',
    'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',
    'pk': 'pk_%(table_name)s',
}

ACCOUNT_ID_LENGTH = 12
# The account of the cloud itself, which owns what administrators register; never a user's.
CLOUD_ACCOUNT = '000000000000'
RESOURCE_ID_LENGTH = 21  # prefix, dash, 17 hex digits


def new_resource_id(prefix):
    """An EC2-style id: `prefix-` and 17 random lowercase hex digits."""
    return f'{prefix}-{secrets.token_hex(9)[:17]}'


_ID_DIGITS = re.compile(r'[0-9a-f]{8}(?:[0-9a-f]{9})?')


def is_resource_id(value, prefix):
    """Whether `value` has the shape of an EC2 id with this prefix: 8 (older) or 17 hex digits."""
    return isinstance(value, str) and value.startswith(f'{prefix}-') and \
        _ID_DIGITS.fullmatch(value[len(prefix) + 1:]) is not None


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite would drop the zone)."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError('naive datetimes are ambiguous; use an aware UTC datetime')
        value = value.astimezone(datetime.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == 'sqlite' else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _account_id():
    return mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)


def _created_at():
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class User(Base):
    __tablename__ = 'users'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, unique=True)
    created_at: Mapped[datetime.datetime] = _created_at()
    # May call the administrators' actions (the resource pool of every account).
    admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())

    access_keys: Mapped[list['AccessKey']] = relationship(
        back_populates='user', cascade='all, delete-orphan', passive_deletes=True,
        order_by='AccessKey.id')


class AccessKey(Base):
    __tablename__ = 'access_keys'

    id: Mapped[int] = mapped_column(primary_key=True)
    access_key_id: Mapped[str] = mapped_column(String(20), nullable=False, unique=True)
    # A vault token: the secret itself is never stored in clear.
    encrypted_secret: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id', ondelete='CASCADE'), nullable=False,
                                         index=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime.datetime] = _created_at()

    user: Mapped[User] = relationship(back_populates='access_keys')


class KeyPair(Base):
    __tablename__ = 'key_pairs'
    __table_args__ = (UniqueConstraint('owner', 'name'),)

    key_pair_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    # Key pairs are credentials of one account: they go when the account goes.
    owner: Mapped[str] = mapped_column(ForeignKey('users.account_id', ondelete='CASCADE'),
                                       nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    key_type: Mapped[str] = mapped_column(String(16), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    public_key: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime.datetime] = _created_at()


class Image(Base):
    __tablename__ = 'images'
    __table_args__ = (
        # A deregistered image frees its name, as in EC2.
        Index('uq_images_owner_name', 'owner', 'name', unique=True,
              sqlite_where=text("state != 'deregistered'"),
              postgresql_where=text("state != 'deregistered'")),
        Index('ix_images_public', 'public'),
    )

    image_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    # Images may be public or shared, so they do not vanish with the owner's account.
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    image_type: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    architecture: Mapped[str] = mapped_column(String(16), nullable=False)
    disk_format: Mapped[str] = mapped_column(String(16), nullable=False)
    # File name inside the image repository, so the state directory can move.
    path: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    virtual_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    kernel_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH))
    ramdisk_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH))
    root_device_name: Mapped[str | None] = mapped_column(String(32))
    # 'instance-store' (its file is the root disk) or 'ebs' (its root is a snapshot, in block_devices).
    root_device_type: Mapped[str] = mapped_column(String(16), nullable=False, default='instance-store')
    created_at: Mapped[datetime.datetime] = _created_at()
    # Why a failed image failed, shown as DescribeImages' stateReason.
    state_reason: Mapped[str | None] = mapped_column(Text)
    deregistered_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # When the file was deleted: a deregistered image keeps it while instances still use it.
    reclaimed_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())

    launch_permissions: Mapped[list['LaunchPermission']] = relationship(
        back_populates='image', cascade='all, delete-orphan', passive_deletes=True)


class Peer(Base):
    """A host that is another EC2 cloud (an ec2+http(s) URI): how to reach it, its capacity as the
    administrator declared it (instance type -> count), and its secret key, encrypted by the vault."""
    __tablename__ = 'peers'

    host_id: Mapped[int] = mapped_column(ForeignKey('hosts.id', ondelete='CASCADE'), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), nullable=False)
    access_key: Mapped[str] = mapped_column(String(128), nullable=False)
    encrypted_secret: Mapped[str] = mapped_column(Text, nullable=False)
    signature: Mapped[str] = mapped_column(String(4), nullable=False, default='v4')
    capacity: Mapped[str] = mapped_column(Text, nullable=False, default='{}')      # JSON
    # 'burst': used once the local hosts are full; 'zone': only by launches that ask for its zone.
    placement: Mapped[str] = mapped_column(String(8), nullable=False, default='burst', server_default='burst')


class PeerImage(Base):
    """Which image of a peer an instance of a local image runs on there."""
    __tablename__ = 'peer_images'

    host_id: Mapped[int] = mapped_column(ForeignKey('hosts.id', ondelete='CASCADE'), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    peer_image_id: Mapped[str] = mapped_column(String(64), nullable=False)


class ImageBlockDevice(Base):
    """A block device mapping of an image: the volume each instance launched from it gets at `device`
    (from a snapshot, or empty of `size_gib`), or none (`no_device`)."""
    __tablename__ = 'image_block_devices'
    __table_args__ = (UniqueConstraint('image_id', 'device'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey('images.image_id', ondelete='CASCADE'), nullable=False)
    device: Mapped[str] = mapped_column(String(32), nullable=False)
    # Indexed for DeleteSnapshot's "is an image built on it?".
    snapshot_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 1), index=True)
    size_gib: Mapped[int | None] = mapped_column()
    volume_type: Mapped[str | None] = mapped_column(String(16))
    iops: Mapped[int | None] = mapped_column()
    throughput: Mapped[int | None] = mapped_column()
    delete_on_termination: Mapped[bool | None] = mapped_column(Boolean)
    no_device: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class LaunchPermission(Base):
    """An account, other than the owner, allowed to launch a private image."""
    __tablename__ = 'launch_permissions'
    __table_args__ = (UniqueConstraint('image_id', 'account_id'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey('images.image_id', ondelete='CASCADE'),
                                          nullable=False)
    # Indexed for "images shared with me", the other side of every DescribeImages.
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)

    image: Mapped[Image] = relationship(back_populates='launch_permissions')


class Upload(Base):
    """A disk image (or kernel, or ramdisk) a user is sending or has sent, waiting for RegisterImage."""
    __tablename__ = 'uploads'
    __table_args__ = (UniqueConstraint('owner', 'name'),)

    upload_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 3), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    image_type: Mapped[str] = mapped_column(String(16), nullable=False)
    # 'receiving' until the last byte arrived and the image passed inspection, then 'ready'.
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    declared_format: Mapped[str | None] = mapped_column(String(16))
    # The object as sent (maybe gzip-compressed): its size and SHA-256, fixed by the first request.
    total_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # Bytes counted against the owner's quota: the size as sent until the image is stored.
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    disk_format: Mapped[str | None] = mapped_column(String(16))
    virtual_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime.datetime] = _created_at()
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


# --- Compute: hosts, networks, instances and what hangs off them ------------------------------

class Host(Base):
    """A hypervisor the VM manager places instances on, with its capacity bookkeeping."""
    __tablename__ = 'hosts'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    uri: Mapped[str] = mapped_column(String(512), nullable=False)
    zone: Mapped[str] = mapped_column(String(64), nullable=False)
    cpus: Mapped[int] = mapped_column(nullable=False)
    memory_mib: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_cpus: Mapped[int] = mapped_column(nullable=False, default=0)
    used_memory_mib: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # 'ok' or 'unreachable', with the monitor's last word on why.
    state: Mapped[str] = mapped_column(String(16), nullable=False, default='ok')
    state_reason: Mapped[str | None] = mapped_column(Text)
    domain_type: Mapped[str] = mapped_column(String(16), nullable=False)
    simulated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    load: Mapped[float] = mapped_column(nullable=False, default=0.0)
    last_seen: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # The worker process that drives this host, and until when its claim holds.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime.datetime] = _created_at()
    # Left empty by a packing rebalance and kept out of placement until enabled (Green IT).
    standby: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # Where instance disks live when every host sees the same files (no copies when moving).
    shared_storage: Mapped[str | None] = mapped_column(String(512))
    # Run with the host's name once it has been unreachable long enough; success means it is off.
    fence_command: Mapped[str | None] = mapped_column(Text)
    unreachable_since: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())


class Vpc(Base):
    """An account's private address space: its subnets route to each other and to nothing else.

    `id` names the VPC's router on hosts (interface names are short); `vpc_id` is what clients see.
    A shared VPC is the cloud's: the networks administrators create, open to every account.
    """
    __tablename__ = 'vpcs'
    __table_args__ = (
        # One default VPC per account, even when two first requests race to create it.
        Index('uq_vpcs_default_owner', 'owner', unique=True, sqlite_where=text('is_default'),
              postgresql_where=text('is_default')),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    vpc_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 2), nullable=False, unique=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    cidr: Mapped[str] = mapped_column(String(43), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    shared: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default='available')
    dns_support: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    dns_hostnames: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The main route table's 0.0.0.0/0 route to the attached internet gateway: without it, no public
    # address of the VPC is reachable.
    internet_route: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    created_at: Mapped[datetime.datetime] = _created_at()


class InternetGateway(Base):
    """An internet gateway (igw-), attached to at most one VPC, and a VPC to at most one."""
    __tablename__ = 'internet_gateways'

    gateway_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 2), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    vpc_pk: Mapped[int | None] = mapped_column(ForeignKey('vpcs.id'), unique=True)
    created_at: Mapped[datetime.datetime] = _created_at()


class SecurityGroup(Base):
    """A security group (sg-) of one account in one VPC; `default` is made for each (VPC, account)."""
    __tablename__ = 'security_groups'
    __table_args__ = (UniqueConstraint('vpc_pk', 'owner', 'name'),)

    group_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    vpc_pk: Mapped[int] = mapped_column(ForeignKey('vpcs.id'), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime.datetime] = _created_at()


class SecurityGroupRule(Base):
    """One rule (sgr-) of a group: a protocol, a port range (ICMP type and code) and one peer, a CIDR
    block or a group, for traffic in (ingress) or out (egress)."""
    __tablename__ = 'security_group_rules'

    rule_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 1), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey('security_groups.group_id', ondelete='CASCADE'),
                                          nullable=False, index=True)
    egress: Mapped[bool] = mapped_column(Boolean, nullable=False)
    protocol: Mapped[str] = mapped_column(String(8), nullable=False)      # 'tcp', 'udp', 'icmp', '-1' or a number
    from_port: Mapped[int | None] = mapped_column()
    to_port: Mapped[int | None] = mapped_column()
    cidr: Mapped[str | None] = mapped_column(String(43))
    peer_group_id: Mapped[str | None] = mapped_column(ForeignKey('security_groups.group_id'), index=True)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default='')
    created_at: Mapped[datetime.datetime] = _created_at()


class InterfaceGroup(Base):
    """A network interface's membership of a security group."""
    __tablename__ = 'interface_groups'

    interface_id: Mapped[str] = mapped_column(ForeignKey('network_interfaces.interface_id', ondelete='CASCADE'),
                                              primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey('security_groups.group_id'), primary_key=True, index=True)


class Network(Base):
    """A virtual network (an EC2 subnet): an isolated L2 segment with its own address range."""
    __tablename__ = 'networks'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    subnet_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 3), nullable=False, unique=True)
    # 'private' networks lease instance addresses; the 'public' one is the elastic IP pool.
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default='private')
    cidr: Mapped[str] = mapped_column(String(43), nullable=False)
    gateway: Mapped[str | None] = mapped_column(String(39))
    dns: Mapped[str | None] = mapped_column(String(255))
    bridge: Mapped[str | None] = mapped_column(String(15))
    vlan: Mapped[int | None] = mapped_column()
    # EC2's DefaultForAz: where a launch that names no subnet goes, in its VPC's zone.
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The VPC the subnet belongs to (none for the elastic IP pool) and the account that made it.
    vpc_pk: Mapped[int | None] = mapped_column(ForeignKey('vpcs.id'), index=True)
    owner: Mapped[str | None] = mapped_column(String(ACCOUNT_ID_LENGTH), index=True)
    # None: a network of the cloud's, usable in every zone.
    zone: Mapped[str | None] = mapped_column(String(64))
    map_public_ip: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # The last address handed out: picks continue after it, round-robin.
    cursor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime.datetime] = _created_at()


class NetworkInterface(Base):
    """An EC2 network interface (eni-): a MAC and addresses in one subnet, maybe attached to an instance.

    Every instance's eth0 is one, made with it and deleted with it; others are made, attached and
    detached by their owners. The instance row keeps eth0's subnet, address and MAC as well, for
    listings and launches.
    """
    __tablename__ = 'network_interfaces'
    __table_args__ = (UniqueConstraint('instance_id', 'device_index'), UniqueConstraint('owner', 'client_token'))

    interface_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    network_id: Mapped[int] = mapped_column(ForeignKey('networks.id'), nullable=False, index=True)
    mac: Mapped[str] = mapped_column(String(17), nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default='')
    source_dest_check: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    instance_id: Mapped[str | None] = mapped_column(ForeignKey('instances.instance_id'), index=True)
    device_index: Mapped[int | None] = mapped_column()
    attachment_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 7), unique=True)
    attached_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # 'attaching' or 'detaching' until the host's worker has plugged or unplugged it; then 'attached'.
    attachment_status: Mapped[str | None] = mapped_column(String(16), index=True)
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Gets a public IP from the pool whenever its instance starts (eth0 of a launch that asked for one).
    wants_public_ip: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # CreateNetworkInterface's idempotency token: a retry gets the interface the first call made.
    client_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = _created_at()


class Lease(Base):
    """An address of a network held by a network interface (its primary one, or a secondary).
    The unique pair makes double leases impossible."""
    __tablename__ = 'leases'
    # VPCs may overlap, so a MAC (02:00 + IPv4) is unique within its network only.
    __table_args__ = (UniqueConstraint('network_id', 'address'), UniqueConstraint('network_id', 'mac'))

    id: Mapped[int] = mapped_column(primary_key=True)
    network_id: Mapped[int] = mapped_column(ForeignKey('networks.id'), nullable=False)
    address: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mac: Mapped[str] = mapped_column(String(17), nullable=False)
    interface_id: Mapped[str] = mapped_column(ForeignKey('network_interfaces.interface_id', ondelete='CASCADE'),
                                              nullable=False, index=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Instance(Base):
    __tablename__ = 'instances'
    __table_args__ = (
        Index('ix_instances_owner_state', 'owner', 'state'),
        Index('ix_instances_state_host', 'state', 'host_id'),
    )

    instance_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    reservation_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), nullable=False, index=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)
    image_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), nullable=False)
    kernel_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH))
    ramdisk_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH))
    instance_type: Mapped[str] = mapped_column(String(32), nullable=False)
    vcpus: Mapped[int] = mapped_column(nullable=False)
    memory_mib: Mapped[int] = mapped_column(nullable=False)
    key_name: Mapped[str | None] = mapped_column(String(255))
    user_data: Mapped[str | None] = mapped_column(Text)           # base64, as the client sent it
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    state_reason_code: Mapped[str | None] = mapped_column(String(64))
    state_reason_message: Mapped[str | None] = mapped_column(Text)
    transition_reason: Mapped[str | None] = mapped_column(Text)
    host_id: Mapped[int | None] = mapped_column(ForeignKey('hosts.id'))
    zone: Mapped[str] = mapped_column(String(64), nullable=False)
    network_id: Mapped[int | None] = mapped_column(ForeignKey('networks.id'))
    private_ip: Mapped[str | None] = mapped_column(String(39), index=True)
    mac: Mapped[str | None] = mapped_column(String(17))
    public_ip: Mapped[str | None] = mapped_column(String(39))
    placement_group: Mapped[str | None] = mapped_column(String(255))
    ami_launch_index: Mapped[int] = mapped_column(nullable=False, default=0)
    client_token: Mapped[str | None] = mapped_column(String(64))
    launch_time: Mapped[datetime.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    state_changed_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime(), nullable=False,
                                                                default=utcnow)
    terminated_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Deploy attempts so far, and when the next may run (bounded retries with back-off).
    attempts: Mapped[int] = mapped_column(nullable=False, default=0)
    next_attempt_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    # StopInstances with Force: power off at once instead of asking the guest through ACPI.
    stop_forced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # ModifyInstanceAttribute's guards and what a shutdown from inside the guest means ('stop' or 'terminate').
    disable_api_termination: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                                          server_default=false())
    disable_api_stop: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    shutdown_behavior: Mapped[str] = mapped_column(String(16), nullable=False, default='stop',
                                                   server_default='stop')
    # While `migrating`: the host it moves to (whose capacity it holds too), and whether live.
    migration_host_id: Mapped[int | None] = mapped_column(ForeignKey('hosts.id'))
    migration_live: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # Moves so far: names its NICs' taps (host_network.tap_name), new ones on the host it moves to.
    nic_generation: Mapped[int] = mapped_column(nullable=False, default=0, server_default='0')


class Volume(Base):
    """An EBS volume (vol-): a qcow2 file of its own, in one zone, attached to at most one instance.

    `state` follows storage.volume_states.VOLUME_TRANSITIONS, `attachment_state` its attachment's
    table; the file is <state dir>/volumes/<volume id>.qcow2, sparse, counted at its full size.
    """
    __tablename__ = 'volumes'
    __table_args__ = (UniqueConstraint('owner', 'client_token'), UniqueConstraint('instance_id', 'device'))

    volume_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    zone: Mapped[str] = mapped_column(String(64), nullable=False)
    size_gib: Mapped[int] = mapped_column(nullable=False)
    volume_type: Mapped[str] = mapped_column(String(16), nullable=False)
    iops: Mapped[int | None] = mapped_column()
    throughput: Mapped[int | None] = mapped_column()
    snapshot_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 1))
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    auto_enable_io: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    client_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime.datetime] = _created_at()
    # The attachment: instance, device name as asked (/dev/sdf), 'attaching' / 'attached' / 'detaching'.
    instance_id: Mapped[str | None] = mapped_column(ForeignKey('instances.instance_id'), index=True)
    device: Mapped[str | None] = mapped_column(String(32))
    attachment_state: Mapped[str | None] = mapped_column(String(16), index=True)
    attached_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    force_detach: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # ModifyVolume grew an attached volume: the worker driving its instance's host grows the disk.
    resize_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The snapshot whose file the volume's own file is an overlay of (None: it stands alone). Made
    # from a snapshot, or frozen into one by CreateSnapshot; that snapshot's file lives while this does.
    backing_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 1), index=True)


class VolumeModification(Base):
    """The latest ModifyVolume of a volume: what it was, what was asked, and whether it is done
    ('modifying' until an attached volume's host has grown its disk, then 'completed')."""
    __tablename__ = 'volume_modifications'

    volume_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    original_size_gib: Mapped[int] = mapped_column(nullable=False)
    original_type: Mapped[str] = mapped_column(String(16), nullable=False)
    original_iops: Mapped[int | None] = mapped_column()
    original_throughput: Mapped[int | None] = mapped_column()
    target_size_gib: Mapped[int] = mapped_column(nullable=False)
    target_type: Mapped[str] = mapped_column(String(16), nullable=False)
    target_iops: Mapped[int | None] = mapped_column()
    target_throughput: Mapped[int | None] = mapped_column()
    started_at: Mapped[datetime.datetime] = _created_at()
    ended_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())


class Snapshot(Base):
    """An EBS snapshot (snap-): an immutable qcow2 file under <state dir>/snapshots, usually an overlay
    of an earlier snapshot's file (`backing_id`), so a snapshot holds only what changed since.

    `state` follows storage.snapshot_states; a deleted snapshot keeps its row, hidden, until no volume
    or snapshot file is built on its file any more. The worker that takes a pending snapshot holds it
    by `claimed_by` until `claimed_until`.
    """
    __tablename__ = 'snapshots'

    snapshot_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 1), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    volume_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), nullable=False, index=True)
    volume_size_gib: Mapped[int] = mapped_column(nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default='')
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    state_message: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[int] = mapped_column(nullable=False, default=0)
    started_at: Mapped[datetime.datetime] = _created_at()
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    backing_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 1), index=True)
    chain_depth: Mapped[int] = mapped_column(nullable=False, default=1)      # files in its chain, its own included
    source_snapshot_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 1))   # CopySnapshot
    batch: Mapped[str | None] = mapped_column(String(40))        # CreateSnapshots: taken at one instant
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime())

    permissions: Mapped[list['SnapshotPermission']] = relationship(
        back_populates='snapshot', cascade='all, delete-orphan', passive_deletes=True)


class SnapshotPermission(Base):
    """An account, other than the owner, allowed to create volumes from a snapshot."""
    __tablename__ = 'snapshot_permissions'
    __table_args__ = (UniqueConstraint('snapshot_id', 'account_id'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[str] = mapped_column(ForeignKey('snapshots.snapshot_id', ondelete='CASCADE'), nullable=False)
    account_id: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)

    snapshot: Mapped[Snapshot] = relationship(back_populates='permissions')


class Tag(Base):
    __tablename__ = 'tags'
    __table_args__ = (Index('ix_tags_owner_key_value', 'owner', 'key', 'value'),)

    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), nullable=False, default='')
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(32), nullable=False)


class Address(Base):
    """An elastic IP from the public pool, owned by an account, maybe associated with an interface."""
    __tablename__ = 'addresses'
    __table_args__ = (UniqueConstraint('interface_id', 'private_ip'),)

    allocation_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH + 5), primary_key=True)
    public_ip: Mapped[str] = mapped_column(String(39), nullable=False, unique=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False, index=True)
    # Associated with a network interface and one of its private addresses; it follows the interface
    # from instance to instance. An interface that is deleted leaves the address unassociated.
    interface_id: Mapped[str | None] = mapped_column(
        ForeignKey('network_interfaces.interface_id', ondelete='SET NULL'), index=True)
    private_ip: Mapped[str | None] = mapped_column(String(39))
    # A public IP given at launch (MapPublicIpOnLaunch / AssociatePublicIpAddress): owned by the cloud,
    # gone when its instance stops or ends, never one of the account's elastic IPs.
    auto_assigned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    association_id: Mapped[str | None] = mapped_column(String(RESOURCE_ID_LENGTH + 5), unique=True)
    created_at: Mapped[datetime.datetime] = _created_at()


class PlacementGroup(Base):
    __tablename__ = 'placement_groups'
    __table_args__ = (UniqueConstraint('owner', 'name'),)

    group_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    strategy: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime.datetime] = _created_at()


class ClientToken(Base):
    """An idempotency token of RunInstances: the same token must mean the same request."""
    __tablename__ = 'client_tokens'
    __table_args__ = (UniqueConstraint('owner', 'token'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)
    token: Mapped[str] = mapped_column(String(64), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    reservation_id: Mapped[str] = mapped_column(String(RESOURCE_ID_LENGTH), nullable=False)
    created_at: Mapped[datetime.datetime] = _created_at()


class AccountQuota(Base):
    """An administrator's override of one quota of one account; the rest come from [quotas]."""
    __tablename__ = 'account_quotas'

    owner: Mapped[str] = mapped_column(ForeignKey('users.account_id', ondelete='CASCADE'), primary_key=True)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class UserCertificate(Base):
    """An X.509 certificate a user signs SOAP requests with: issued by the cloud's CA or brought."""
    __tablename__ = 'user_certificates'

    certificate_id: Mapped[str] = mapped_column(String(64), primary_key=True)   # SHA-256 of the DER, hex
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id', ondelete='CASCADE'), nullable=False, index=True)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    subject: Mapped[str] = mapped_column(String(512), nullable=False)
    not_before: Mapped[datetime.datetime] = mapped_column(UTCDateTime, nullable=False)
    not_after: Mapped[datetime.datetime] = mapped_column(UTCDateTime, nullable=False)
    issued_here: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime.datetime] = _created_at()


class SeenSignature(Base):
    """A WS-Security signature already accepted, kept until its Timestamp would be refused anyway:
    the replay cache, here so that every server process shares it."""
    __tablename__ = 'seen_signatures'

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class CapacitySample(Base):
    """A host's capacity as the monitor saw it at one moment (the start of a sampling interval).
    Keyed by the host's name, not its row, so the history outlives a host that was removed."""
    __tablename__ = 'capacity_samples'
    __table_args__ = (Index('ix_capacity_samples_host_time', 'host_name', 'time'),)

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    host_name: Mapped[str] = mapped_column(String(64), nullable=False)
    vcpu_used: Mapped[int] = mapped_column(nullable=False)
    vcpu_total: Mapped[int] = mapped_column(nullable=False)
    memory_used_mib: Mapped[int] = mapped_column(BigInteger, nullable=False)
    memory_total_mib: Mapped[int] = mapped_column(BigInteger, nullable=False)
    instance_count: Mapped[int] = mapped_column(nullable=False)


class PlacementFailure(Base):
    """A launch the scheduler refused (InsufficientInstanceCapacity), with its reasons."""
    __tablename__ = 'placement_failures'

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)
    instance_type: Mapped[str] = mapped_column(String(32), nullable=False)
    count: Mapped[int] = mapped_column(nullable=False)      # MinCount: what could not be placed
    zone: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, nullable=False)          # the tenant's summary
    host_reasons: Mapped[str | None] = mapped_column(Text)             # JSON {host name: why not}


class LaunchEvent(Base):
    """Instances launched (RunInstances placed them) or failed to deploy, counted at one moment."""
    __tablename__ = 'launch_events'

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime.datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    owner: Mapped[str] = mapped_column(String(ACCOUNT_ID_LENGTH), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)      # 'launched' or 'deploy-failed'
    count: Mapped[int] = mapped_column(nullable=False)
