"""Instance attributes clients set: termination and stop protection, the shutdown behaviour.

Revision ID: 0009_instance_attributes
Revises: 0008_internet_gateways
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_instance_attributes'
down_revision = '0008_internet_gateways'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('disable_api_termination', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('disable_api_stop', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('shutdown_behavior', sa.String(16), nullable=False, server_default='stop'))


def downgrade():
    with op.batch_alter_table('instances') as batch:
        batch.drop_column('shutdown_behavior')
        batch.drop_column('disable_api_stop')
        batch.drop_column('disable_api_termination')
