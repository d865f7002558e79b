"""Network interfaces: every lease belongs to one (eni-); each instance's lease becomes its eth0.

Revision ID: 0007_network_interfaces
Revises: 0006_vpcs
Create Date: 2026-12-05
"""
import datetime
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0007_network_interfaces'
down_revision = '0006_vpcs'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'network_interfaces',
        sa.Column('interface_id', sa.String(21), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('network_id', sa.Integer(), nullable=False),
        sa.Column('mac', sa.String(17), nullable=False),
        sa.Column('description', sa.String(255), nullable=False),
        sa.Column('source_dest_check', sa.Boolean(), nullable=False),
        sa.Column('instance_id', sa.String(21), nullable=True),
        sa.Column('device_index', sa.Integer(), nullable=True),
        sa.Column('attachment_id', sa.String(28), nullable=True),
        sa.Column('attached_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attachment_status', sa.String(16), nullable=True),
        sa.Column('delete_on_termination', sa.Boolean(), nullable=False),
        sa.Column('client_token', sa.String(64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_interfaces_network_id_networks')),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.instance_id'],
                                name=op.f('fk_network_interfaces_instance_id_instances')),
        sa.PrimaryKeyConstraint('interface_id', name=op.f('pk_network_interfaces')),
        sa.UniqueConstraint('instance_id', 'device_index', name=op.f('uq_network_interfaces_instance_id_device_index')),
        sa.UniqueConstraint('attachment_id', name=op.f('uq_network_interfaces_attachment_id')),
        sa.UniqueConstraint('owner', 'client_token', name=op.f('uq_network_interfaces_owner_client_token')),
    )
    op.create_index('ix_network_interfaces_owner', 'network_interfaces', ['owner'])
    op.create_index('ix_network_interfaces_network_id', 'network_interfaces', ['network_id'])
    op.create_index('ix_network_interfaces_instance_id', 'network_interfaces', ['instance_id'])
    op.create_index('ix_network_interfaces_attachment_status', 'network_interfaces', ['attachment_status'])
    with op.batch_alter_table('leases') as batch:
        batch.add_column(sa.Column('interface_id', sa.String(21), nullable=True))
        batch.add_column(sa.Column('is_primary', sa.Boolean(), nullable=False, server_default=sa.true()))
    _give_each_lease_an_interface()
    with op.batch_alter_table('leases') as batch:
        batch.alter_column('interface_id', existing_type=sa.String(21), nullable=False)
        batch.alter_column('is_primary', existing_type=sa.Boolean(), server_default=None)
        batch.drop_constraint(op.f('uq_leases_instance_id'), type_='unique')
        batch.drop_constraint(op.f('fk_leases_instance_id_instances'), type_='foreignkey')
        batch.drop_column('instance_id')
        batch.create_foreign_key(op.f('fk_leases_interface_id_network_interfaces'), 'network_interfaces',
                                 ['interface_id'], ['interface_id'], ondelete='CASCADE')
        batch.create_index('ix_leases_interface_id', ['interface_id'])


def _give_each_lease_an_interface():
    bind = op.get_bind()
    leases = sa.table('leases', sa.column('id'), sa.column('network_id'), sa.column('mac'), sa.column('instance_id'),
                      sa.column('interface_id'))
    instances = sa.table('instances', sa.column('instance_id'), sa.column('owner'), sa.column('launch_time'))
    interfaces = sa.table('network_interfaces', *(sa.column(name) for name in (
        'interface_id', 'owner', 'network_id', 'mac', 'description', 'source_dest_check', 'instance_id',
        'device_index', 'attachment_id', 'attached_at', 'attachment_status', 'delete_on_termination',
        'created_at')))
    rows = bind.execute(sa.select(leases.c.id, leases.c.network_id, leases.c.mac, leases.c.instance_id,
                                  instances.c.owner, instances.c.launch_time)
                        .join(instances, instances.c.instance_id == leases.c.instance_id)).all()
    for lease_id, network_id, mac, instance_id, owner, launched in rows:
        interface_id = f'eni-{secrets.token_hex(9)[:17]}'
        bind.execute(interfaces.insert().values(
            interface_id=interface_id, owner=owner, network_id=network_id, mac=mac, description='',
            source_dest_check=True, instance_id=instance_id, device_index=0,
            attachment_id=f'eni-attach-{secrets.token_hex(9)[:17]}', attached_at=launched or _now(bind),
            attachment_status='attached',
            delete_on_termination=True, created_at=launched or _now(bind)))
        bind.execute(leases.update().where(leases.c.id == lease_id).values(interface_id=interface_id))
    # A lease without its instance held nothing (the instance's row cascades to it): drop it.
    bind.execute(leases.delete().where(leases.c.interface_id.is_(None)))


def _now(bind):
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(tzinfo=None) if bind.dialect.name == 'sqlite' else now


def downgrade():
    raise NotImplementedError('leases of interfaces other than eth0 have no place in the earlier schema')
