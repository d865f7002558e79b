"""Public IPs given at launch: the addresses say which were, the interfaces which want one.

Revision ID: 0010_public_ips_at_launch
Revises: 0009_instance_attributes
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_public_ips_at_launch'
down_revision = '0009_instance_attributes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('addresses') as batch:
        batch.add_column(sa.Column('auto_assigned', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('network_interfaces') as batch:
        batch.add_column(sa.Column('wants_public_ip', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('network_interfaces') as batch:
        batch.drop_column('wants_public_ip')
    with op.batch_alter_table('addresses') as batch:
        batch.drop_column('auto_assigned')
