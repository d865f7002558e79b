"""The tables of the VM manager, as SQLAlchemy declarative models.

Resources are keyed by their EC2 ids (`ami-…`, `key-…`), so the ids clients see are the ones the
database joins on. Every schema change comes with a migration in `migrations/versions/`.
"""
import datetime
import secrets

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, MetaData, String, Text,
                        TypeDecorator, UniqueConstraint, text)
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
RESOURCE_ID_LENGTH = 21  # prefix, dash, 17 hex digits


def new_resource_id(prefix):
    """An EC2-style id: `prefix-` and 17 random lowercase hex digits."""
    return f'{prefix}-{secrets.token_hex(9)[:17]}'


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
    created_at: Mapped[datetime.datetime] = _created_at()

    launch_permissions: Mapped[list['LaunchPermission']] = relationship(
        back_populates='image', cascade='all, delete-orphan', passive_deletes=True)


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
