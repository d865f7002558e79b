"""Peers: other EC2 clouds registered as hosts, their encrypted keys and image mappings.

Revision ID: 0016_peers
Revises: 0015_volume_modifications
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0016_peers'
down_revision = '0015_volume_modifications'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'peers',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('region', sa.String(64), nullable=False),
        sa.Column('access_key', sa.String(128), nullable=False),
        sa.Column('encrypted_secret', sa.Text(), nullable=False),
        sa.Column('signature', sa.String(4), nullable=False),
        sa.Column('capacity', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ondelete='CASCADE', name=op.f('fk_peers_host_id_hosts')),
        sa.PrimaryKeyConstraint('host_id', name=op.f('pk_peers')),
    )
    op.create_table(
        'peer_images',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.String(21), nullable=False),
        sa.Column('peer_image_id', sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ondelete='CASCADE',
                                name=op.f('fk_peer_images_host_id_hosts')),
        sa.PrimaryKeyConstraint('host_id', 'image_id', name=op.f('pk_peer_images')),
    )


def downgrade():
    op.drop_table('peer_images')
    op.drop_table('peers')
