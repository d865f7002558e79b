"""Instances move between hosts: the target of a migration; hosts on standby, with shared storage, fencing.

Revision ID: 0018_instance_migration
Revises: 0017_peer_placement
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0018_instance_migration'
down_revision = '0017_peer_placement'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances') as batch:
        batch.add_column(sa.Column('migration_host_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('migration_live', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('nic_generation', sa.Integer(), nullable=False, server_default='0'))
        batch.create_foreign_key(op.f('fk_instances_migration_host_id_hosts'), 'hosts', ['migration_host_id'], ['id'])
    with op.batch_alter_table('hosts') as batch:
        batch.add_column(sa.Column('standby', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('shared_storage', sa.String(512), nullable=True))
        batch.add_column(sa.Column('fence_command', sa.Text(), nullable=True))
        batch.add_column(sa.Column('unreachable_since', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('hosts') as batch:
        batch.drop_column('unreachable_since')
        batch.drop_column('fence_command')
        batch.drop_column('shared_storage')
        batch.drop_column('standby')
    with op.batch_alter_table('instances') as batch:
        batch.drop_constraint(op.f('fk_instances_migration_host_id_hosts'), type_='foreignkey')
        batch.drop_column('nic_generation')
        batch.drop_column('migration_live')
        batch.drop_column('migration_host_id')
