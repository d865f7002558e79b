"""Users and their access keys, key pairs, images and launch permissions.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None

_NOT_DEREGISTERED = sa.text("state != 'deregistered'")


def upgrade():
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(64), nullable=False),
        sa.Column('account_id', sa.String(12), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_users'),
        sa.UniqueConstraint('name', name='uq_users_name'),
        sa.UniqueConstraint('account_id', name='uq_users_account_id'),
    )
    op.create_table(
        'access_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('access_key_id', sa.String(20), nullable=False),
        sa.Column('encrypted_secret', sa.Text(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_access_keys'),
        sa.UniqueConstraint('access_key_id', name='uq_access_keys_access_key_id'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name='fk_access_keys_user_id_users'),
    )
    op.create_index('ix_access_keys_user_id', 'access_keys', ['user_id'])
    op.create_table(
        'key_pairs',
        sa.Column('key_pair_id', sa.String(21), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('name', sa.String(255), nullable=False),
        sa.Column('key_type', sa.String(16), nullable=False),
        sa.Column('fingerprint', sa.String(64), nullable=False),
        sa.Column('public_key', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key_pair_id', name='pk_key_pairs'),
        sa.UniqueConstraint('owner', 'name', name='uq_key_pairs_owner_name'),
        sa.ForeignKeyConstraint(['owner'], ['users.account_id'], ondelete='CASCADE',
                                name='fk_key_pairs_owner_users'),
    )
    op.create_table(
        'images',
        sa.Column('image_id', sa.String(21), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('name', sa.String(128), nullable=False),
        sa.Column('description', sa.String(255), nullable=True),
        sa.Column('image_type', sa.String(16), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('public', sa.Boolean(), nullable=False),
        sa.Column('architecture', sa.String(16), nullable=False),
        sa.Column('disk_format', sa.String(16), nullable=False),
        sa.Column('path', sa.String(255), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('virtual_size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('kernel_id', sa.String(21), nullable=True),
        sa.Column('ramdisk_id', sa.String(21), nullable=True),
        sa.Column('root_device_name', sa.String(32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('image_id', name='pk_images'),
    )
    op.create_index('ix_images_owner', 'images', ['owner'])
    op.create_index('ix_images_public', 'images', ['public'])
    op.create_index('uq_images_owner_name', 'images', ['owner', 'name'], unique=True,
                    sqlite_where=_NOT_DEREGISTERED, postgresql_where=_NOT_DEREGISTERED)
    op.create_table(
        'launch_permissions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.String(21), nullable=False),
        sa.Column('account_id', sa.String(12), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_launch_permissions'),
        sa.UniqueConstraint('image_id', 'account_id', name='uq_launch_permissions_image_id_account_id'),
        sa.ForeignKeyConstraint(['image_id'], ['images.image_id'], ondelete='CASCADE',
                                name='fk_launch_permissions_image_id_images'),
    )
    op.create_index('ix_launch_permissions_account_id', 'launch_permissions', ['account_id'])


def downgrade():
    op.drop_table('launch_permissions')
    op.drop_table('images')
    op.drop_table('key_pairs')
    op.drop_table('access_keys')
    op.drop_table('users')
