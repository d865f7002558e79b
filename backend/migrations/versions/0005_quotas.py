"""Per-account quota overrides (instances, vCPUs, elastic IPs, images, storage).

Revision ID: 0005_quotas
Revises: 0004_forced_stop
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_quotas'
down_revision = '0004_forced_stop'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'account_quotas',
        sa.Column('owner', sa.String(12), sa.ForeignKey('users.account_id', ondelete='CASCADE'), primary_key=True),
        sa.Column('resource', sa.String(32), primary_key=True),
        sa.Column('value', sa.BigInteger(), nullable=False),
    )


def downgrade():
    op.drop_table('account_quotas')
