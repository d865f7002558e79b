"""Internet gateways, and each VPC's route to one. The cloud's shared VPCs and the accounts' default
VPCs get a gateway attached and routed, so their elastic IPs keep working as before. Elastic IPs are
associated with interfaces now: an instance's association becomes one with its eth0.

Revision ID: 0008_internet_gateways
Revises: 0007_network_interfaces
Create Date: 2026-12-05
"""
import datetime
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0008_internet_gateways'
down_revision = '0007_network_interfaces'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'internet_gateways',
        sa.Column('gateway_id', sa.String(23), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('vpc_pk', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['vpc_pk'], ['vpcs.id'], name=op.f('fk_internet_gateways_vpc_pk_vpcs')),
        sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_internet_gateways')),
        sa.UniqueConstraint('vpc_pk', name=op.f('uq_internet_gateways_vpc_pk')),
    )
    op.create_index('ix_internet_gateways_owner', 'internet_gateways', ['owner'])
    with op.batch_alter_table('vpcs') as batch:
        batch.add_column(sa.Column('internet_route', sa.Boolean(), nullable=False, server_default=sa.false()))
    _associate_addresses_with_interfaces()
    bind = op.get_bind()
    now = datetime.datetime.now(datetime.timezone.utc)
    if bind.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    vpcs = sa.table('vpcs', sa.column('id'), sa.column('owner'), sa.column('shared'), sa.column('is_default'),
                    sa.column('internet_route'))
    gateways = sa.table('internet_gateways', sa.column('gateway_id'), sa.column('owner'), sa.column('vpc_pk'),
                        sa.column('created_at'))
    for vpc_pk, owner in bind.execute(sa.select(vpcs.c.id, vpcs.c.owner).where(
            sa.or_(vpcs.c.shared.is_(True), vpcs.c.is_default.is_(True)))).all():
        bind.execute(gateways.insert().values(gateway_id=f'igw-{secrets.token_hex(9)[:17]}', owner=owner,
                                              vpc_pk=vpc_pk, created_at=now))
        bind.execute(vpcs.update().where(vpcs.c.id == vpc_pk).values(internet_route=True))


def _associate_addresses_with_interfaces():
    with op.batch_alter_table('addresses') as batch:
        batch.add_column(sa.Column('interface_id', sa.String(21), nullable=True))
        batch.add_column(sa.Column('private_ip', sa.String(39), nullable=True))
    bind = op.get_bind()
    addresses = sa.table('addresses', sa.column('allocation_id'), sa.column('instance_id'), sa.column('interface_id'),
                         sa.column('private_ip'))
    interfaces = sa.table('network_interfaces', sa.column('interface_id'), sa.column('instance_id'),
                          sa.column('device_index'))
    instances = sa.table('instances', sa.column('instance_id'), sa.column('private_ip'))
    rows = bind.execute(sa.select(addresses.c.allocation_id, interfaces.c.interface_id, instances.c.private_ip)
                        .join(interfaces, (interfaces.c.instance_id == addresses.c.instance_id)
                              & (interfaces.c.device_index == 0))
                        .join(instances, instances.c.instance_id == addresses.c.instance_id)).all()
    for allocation_id, interface_id, private_ip in rows:
        bind.execute(addresses.update().where(addresses.c.allocation_id == allocation_id)
                     .values(interface_id=interface_id, private_ip=private_ip))
    with op.batch_alter_table('addresses') as batch:
        batch.drop_constraint(op.f('uq_addresses_instance_id'), type_='unique')
        batch.drop_constraint(op.f('fk_addresses_instance_id_instances'), type_='foreignkey')
        batch.drop_column('instance_id')
        batch.create_foreign_key(op.f('fk_addresses_interface_id_network_interfaces'), 'network_interfaces',
                                 ['interface_id'], ['interface_id'], ondelete='SET NULL')
        batch.create_index('ix_addresses_interface_id', ['interface_id'])
        batch.create_unique_constraint(op.f('uq_addresses_interface_id_private_ip'), ['interface_id', 'private_ip'])


def downgrade():
    raise NotImplementedError('addresses of interfaces other than eth0 have no place in the earlier schema')
