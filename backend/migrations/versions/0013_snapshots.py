"""EBS snapshots: immutable qcow2 layers, shared by createVolumePermission; volumes built on them.

Revision ID: 0013_snapshots
Revises: 0012_volumes
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_snapshots'
down_revision = '0012_volumes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'snapshots',
        sa.Column('snapshot_id', sa.String(22), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('volume_id', sa.String(21), nullable=False),
        sa.Column('volume_size_gib', sa.Integer(), nullable=False),
        sa.Column('description', sa.String(255), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('state_message', sa.String(255), nullable=True),
        sa.Column('progress', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('public', sa.Boolean(), nullable=False),
        sa.Column('backing_id', sa.String(22), nullable=True),
        sa.Column('chain_depth', sa.Integer(), nullable=False),
        sa.Column('source_snapshot_id', sa.String(22), nullable=True),
        sa.Column('batch', sa.String(40), nullable=True),
        sa.Column('claimed_by', sa.String(128), nullable=True),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('snapshot_id', name=op.f('pk_snapshots')),
    )
    op.create_index('ix_snapshots_owner', 'snapshots', ['owner'])
    op.create_index('ix_snapshots_volume_id', 'snapshots', ['volume_id'])
    op.create_index('ix_snapshots_state', 'snapshots', ['state'])
    op.create_index('ix_snapshots_backing_id', 'snapshots', ['backing_id'])
    op.create_table(
        'snapshot_permissions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('snapshot_id', sa.String(22), nullable=False),
        sa.Column('account_id', sa.String(12), nullable=False),
        sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.snapshot_id'], ondelete='CASCADE',
                                name=op.f('fk_snapshot_permissions_snapshot_id_snapshots')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshot_permissions')),
        sa.UniqueConstraint('snapshot_id', 'account_id', name=op.f('uq_snapshot_permissions_snapshot_id_account_id')),
    )
    op.create_index('ix_snapshot_permissions_account_id', 'snapshot_permissions', ['account_id'])
    with op.batch_alter_table('volumes') as batch:
        batch.add_column(sa.Column('backing_id', sa.String(22), nullable=True))
        batch.create_index('ix_volumes_backing_id', ['backing_id'])


def downgrade():
    with op.batch_alter_table('volumes') as batch:
        batch.drop_index('ix_volumes_backing_id')
        batch.drop_column('backing_id')
    op.drop_table('snapshot_permissions')
    op.drop_table('snapshots')
