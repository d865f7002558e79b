"""The latest ModifyVolume of each volume, for DescribeVolumesModifications.

Revision ID: 0015_volume_modifications
Revises: 0014_ebs_images
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_volume_modifications'
down_revision = '0014_ebs_images'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'volume_modifications',
        sa.Column('volume_id', sa.String(21), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('original_size_gib', sa.Integer(), nullable=False),
        sa.Column('original_type', sa.String(16), nullable=False),
        sa.Column('original_iops', sa.Integer(), nullable=True),
        sa.Column('original_throughput', sa.Integer(), nullable=True),
        sa.Column('target_size_gib', sa.Integer(), nullable=False),
        sa.Column('target_type', sa.String(16), nullable=False),
        sa.Column('target_iops', sa.Integer(), nullable=True),
        sa.Column('target_throughput', sa.Integer(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('volume_id', name=op.f('pk_volume_modifications')),
    )
    op.create_index('ix_volume_modifications_owner', 'volume_modifications', ['owner'])


def downgrade():
    op.drop_table('volume_modifications')
