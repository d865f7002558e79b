"""EBS volumes: qcow2 files of their own, attached to at most one instance.

Revision ID: 0012_volumes
Revises: 0011_security_groups
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_volumes'
down_revision = '0011_security_groups'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'volumes',
        sa.Column('volume_id', sa.String(21), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('zone', sa.String(64), nullable=False),
        sa.Column('size_gib', sa.Integer(), nullable=False),
        sa.Column('volume_type', sa.String(16), nullable=False),
        sa.Column('iops', sa.Integer(), nullable=True),
        sa.Column('throughput', sa.Integer(), nullable=True),
        sa.Column('snapshot_id', sa.String(22), nullable=True),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('auto_enable_io', sa.Boolean(), nullable=False),
        sa.Column('client_token', sa.String(64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('instance_id', sa.String(21), nullable=True),
        sa.Column('device', sa.String(32), nullable=True),
        sa.Column('attachment_state', sa.String(16), nullable=True),
        sa.Column('attached_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delete_on_termination', sa.Boolean(), nullable=False),
        sa.Column('force_detach', sa.Boolean(), nullable=False),
        sa.Column('resize_pending', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.instance_id'],
                                name=op.f('fk_volumes_instance_id_instances')),
        sa.PrimaryKeyConstraint('volume_id', name=op.f('pk_volumes')),
        sa.UniqueConstraint('owner', 'client_token', name=op.f('uq_volumes_owner_client_token')),
        sa.UniqueConstraint('instance_id', 'device', name=op.f('uq_volumes_instance_id_device')),
    )
    op.create_index('ix_volumes_owner', 'volumes', ['owner'])
    op.create_index('ix_volumes_state', 'volumes', ['state'])
    op.create_index('ix_volumes_instance_id', 'volumes', ['instance_id'])
    op.create_index('ix_volumes_attachment_state', 'volumes', ['attachment_state'])


def downgrade():
    op.drop_table('volumes')
