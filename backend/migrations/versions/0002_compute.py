"""Compute: hosts, networks and leases, instances, tags, elastic IPs, placement groups, client tokens.

Revision ID: 0002_compute
Revises: 0001_initial
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_compute'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('client_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=12), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('reservation_id', sa.String(length=21), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_tokens')),
    sa.UniqueConstraint('owner', 'token', name=op.f('uq_client_tokens_owner_token'))
    )
    op.create_table('hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(length=512), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('cpus', sa.Integer(), nullable=False),
    sa.Column('memory_mib', sa.BigInteger(), nullable=False),
    sa.Column('used_cpus', sa.Integer(), nullable=False),
    sa.Column('used_memory_mib', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('domain_type', sa.String(length=16), nullable=False),
    sa.Column('simulated', sa.Boolean(), nullable=False),
    sa.Column('load', sa.Double(), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('name', name=op.f('uq_hosts_name'))
    )
    op.create_table('networks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('subnet_id', sa.String(length=24), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('cidr', sa.String(length=43), nullable=False),
    sa.Column('gateway', sa.String(length=39), nullable=True),
    sa.Column('dns', sa.String(length=255), nullable=True),
    sa.Column('bridge', sa.String(length=15), nullable=True),
    sa.Column('vlan', sa.Integer(), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_networks')),
    sa.UniqueConstraint('name', name=op.f('uq_networks_name')),
    sa.UniqueConstraint('subnet_id', name=op.f('uq_networks_subnet_id'))
    )
    op.create_table('placement_groups',
    sa.Column('group_id', sa.String(length=21), nullable=False),
    sa.Column('owner', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('strategy', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('group_id', name=op.f('pk_placement_groups')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_placement_groups_owner_name'))
    )
    op.create_table('tags',
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.Column('owner', sa.String(length=12), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('resource_id', 'key', name=op.f('pk_tags'))
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_owner_key_value', ['owner', 'key', 'value'], unique=False)

    op.create_table('instances',
    sa.Column('instance_id', sa.String(length=21), nullable=False),
    sa.Column('reservation_id', sa.String(length=21), nullable=False),
    sa.Column('owner', sa.String(length=12), nullable=False),
    sa.Column('image_id', sa.String(length=21), nullable=False),
    sa.Column('kernel_id', sa.String(length=21), nullable=True),
    sa.Column('ramdisk_id', sa.String(length=21), nullable=True),
    sa.Column('instance_type', sa.String(length=32), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mib', sa.Integer(), nullable=False),
    sa.Column('key_name', sa.String(length=255), nullable=True),
    sa.Column('user_data', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_reason_code', sa.String(length=64), nullable=True),
    sa.Column('state_reason_message', sa.Text(), nullable=True),
    sa.Column('transition_reason', sa.Text(), nullable=True),
    sa.Column('host_id', sa.Integer(), nullable=True),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('network_id', sa.Integer(), nullable=True),
    sa.Column('private_ip', sa.String(length=39), nullable=True),
    sa.Column('mac', sa.String(length=17), nullable=True),
    sa.Column('public_ip', sa.String(length=39), nullable=True),
    sa.Column('placement_group', sa.String(length=255), nullable=True),
    sa.Column('ami_launch_index', sa.Integer(), nullable=False),
    sa.Column('client_token', sa.String(length=64), nullable=True),
    sa.Column('launch_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('terminated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_instances_host_id_hosts')),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_instances_network_id_networks')),
    sa.PrimaryKeyConstraint('instance_id', name=op.f('pk_instances'))
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index('ix_instances_owner_state', ['owner', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_private_ip'), ['private_ip'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_reservation_id'), ['reservation_id'], unique=False)
        batch_op.create_index('ix_instances_state_host', ['state', 'host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_terminated_at'), ['terminated_at'], unique=False)

    op.create_table('addresses',
    sa.Column('allocation_id', sa.String(length=26), nullable=False),
    sa.Column('public_ip', sa.String(length=39), nullable=False),
    sa.Column('owner', sa.String(length=12), nullable=False),
    sa.Column('instance_id', sa.String(length=21), nullable=True),
    sa.Column('association_id', sa.String(length=26), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.instance_id'], name=op.f('fk_addresses_instance_id_instances')),
    sa.PrimaryKeyConstraint('allocation_id', name=op.f('pk_addresses')),
    sa.UniqueConstraint('association_id', name=op.f('uq_addresses_association_id')),
    sa.UniqueConstraint('instance_id', name=op.f('uq_addresses_instance_id')),
    sa.UniqueConstraint('public_ip', name=op.f('uq_addresses_public_ip'))
    )
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_addresses_owner'), ['owner'], unique=False)

    op.create_table('leases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('network_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.BigInteger(), nullable=False),
    sa.Column('mac', sa.String(length=17), nullable=False),
    sa.Column('instance_id', sa.String(length=21), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.instance_id'], name=op.f('fk_leases_instance_id_instances'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_leases_network_id_networks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leases')),
    sa.UniqueConstraint('instance_id', name=op.f('uq_leases_instance_id')),
    sa.UniqueConstraint('mac', name=op.f('uq_leases_mac')),
    sa.UniqueConstraint('network_id', 'address', name=op.f('uq_leases_network_id_address'))
    )


def downgrade():
    op.drop_table('leases')
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_addresses_owner'))

    op.drop_table('addresses')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_terminated_at'))
        batch_op.drop_index('ix_instances_state_host')
        batch_op.drop_index(batch_op.f('ix_instances_reservation_id'))
        batch_op.drop_index(batch_op.f('ix_instances_private_ip'))
        batch_op.drop_index('ix_instances_owner_state')

    op.drop_table('instances')
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index('ix_tags_owner_key_value')

    op.drop_table('tags')
    op.drop_table('placement_groups')
    op.drop_table('networks')
    op.drop_table('hosts')
    op.drop_table('client_tokens')
