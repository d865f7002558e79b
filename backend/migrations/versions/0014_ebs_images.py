"""EBS-backed images: the root device type, and block device mappings to snapshots.

Revision ID: 0014_ebs_images
Revises: 0013_snapshots
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0014_ebs_images'
down_revision = '0013_snapshots'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('root_device_type', sa.String(16), nullable=False,
                                   server_default='instance-store'))
    op.create_table(
        'image_block_devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.String(21), nullable=False),
        sa.Column('device', sa.String(32), nullable=False),
        sa.Column('snapshot_id', sa.String(22), nullable=True),
        sa.Column('size_gib', sa.Integer(), nullable=True),
        sa.Column('volume_type', sa.String(16), nullable=True),
        sa.Column('iops', sa.Integer(), nullable=True),
        sa.Column('throughput', sa.Integer(), nullable=True),
        sa.Column('delete_on_termination', sa.Boolean(), nullable=True),
        sa.Column('no_device', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.image_id'], ondelete='CASCADE',
                                name=op.f('fk_image_block_devices_image_id_images')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_image_block_devices')),
        sa.UniqueConstraint('image_id', 'device', name=op.f('uq_image_block_devices_image_id_device')),
    )
    op.create_index('ix_image_block_devices_snapshot_id', 'image_block_devices', ['snapshot_id'])


def downgrade():
    op.drop_table('image_block_devices')
    with op.batch_alter_table('images') as batch:
        batch.drop_column('root_device_type')
