"""Peers: when the scheduler may use one (after the local hosts are full, or only when asked for by zone).

Revision ID: 0017_peer_placement
Revises: 0016_peers
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0017_peer_placement'
down_revision = '0016_peers'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('peers') as batch:
        batch.add_column(sa.Column('placement', sa.String(8), nullable=False, server_default='burst'))


def downgrade():
    with op.batch_alter_table('peers') as batch:
        batch.drop_column('placement')
