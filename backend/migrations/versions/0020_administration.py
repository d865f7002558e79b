"""Administrators, and what they look back on: capacity samples per host, placement failures, launches.

Revision ID: 0020_administration
Revises: 0019_certificates
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0020_administration'
down_revision = '0019_certificates'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('admin', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'capacity_samples',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('host_name', sa.String(64), nullable=False),
        sa.Column('vcpu_used', sa.Integer(), nullable=False),
        sa.Column('vcpu_total', sa.Integer(), nullable=False),
        sa.Column('memory_used_mib', sa.BigInteger(), nullable=False),
        sa.Column('memory_total_mib', sa.BigInteger(), nullable=False),
        sa.Column('instance_count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_capacity_samples')),
    )
    op.create_index(op.f('ix_capacity_samples_time'), 'capacity_samples', ['time'])
    op.create_index('ix_capacity_samples_host_time', 'capacity_samples', ['host_name', 'time'])
    op.create_table(
        'placement_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('instance_type', sa.String(32), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('zone', sa.String(64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('host_reasons', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_placement_failures')),
    )
    op.create_index(op.f('ix_placement_failures_time'), 'placement_failures', ['time'])
    op.create_table(
        'launch_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_launch_events')),
    )
    op.create_index(op.f('ix_launch_events_time'), 'launch_events', ['time'])


def downgrade():
    op.drop_index(op.f('ix_launch_events_time'), table_name='launch_events')
    op.drop_table('launch_events')
    op.drop_index(op.f('ix_placement_failures_time'), table_name='placement_failures')
    op.drop_table('placement_failures')
    op.drop_index('ix_capacity_samples_host_time', table_name='capacity_samples')
    op.drop_index(op.f('ix_capacity_samples_time'), table_name='capacity_samples')
    op.drop_table('capacity_samples')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('admin')
