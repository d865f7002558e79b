"""VPCs: each subnet belongs to one. Existing networks become shared VPCs of the cloud, one each.

Each network was isolated from every other before; as the only subnet of its own VPC it stays so,
and its instances keep their addresses, MACs and bridge.

Revision ID: 0006_vpcs
Revises: 0005_quotas
Create Date: 2026-12-05
"""
import datetime
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0006_vpcs'
down_revision = '0005_quotas'
branch_labels = None
depends_on = None

CLOUD_ACCOUNT = '000000000000'


def upgrade():
    op.create_table(
        'vpcs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('vpc_id', sa.String(23), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('cidr', sa.String(43), nullable=False),
        sa.Column('is_default', sa.Boolean(), nullable=False),
        sa.Column('shared', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('dns_support', sa.Boolean(), nullable=False),
        sa.Column('dns_hostnames', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vpcs')),
        sa.UniqueConstraint('vpc_id', name=op.f('uq_vpcs_vpc_id')),
    )
    op.create_index('ix_vpcs_owner', 'vpcs', ['owner'])
    op.create_index('uq_vpcs_default_owner', 'vpcs', ['owner'], unique=True,
                    sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
    with op.batch_alter_table('networks') as batch:
        batch.add_column(sa.Column('vpc_pk', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('owner', sa.String(12), nullable=True))
        batch.add_column(sa.Column('zone', sa.String(64), nullable=True))
        batch.add_column(sa.Column('map_public_ip', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_foreign_key(op.f('fk_networks_vpc_pk_vpcs'), 'vpcs', ['vpc_pk'], ['id'])
        batch.create_index('ix_networks_vpc_pk', ['vpc_pk'])
        batch.create_index('ix_networks_owner', ['owner'])
    # VPCs may overlap, so one MAC (02:00 + IPv4) can appear in two of them: unique per network only.
    with op.batch_alter_table('leases') as batch:
        batch.drop_constraint(op.f('uq_leases_mac'), type_='unique')
        batch.create_unique_constraint(op.f('uq_leases_network_id_mac'), ['network_id', 'mac'])
    _give_each_network_a_vpc()


def _give_each_network_a_vpc():
    bind = op.get_bind()
    now = datetime.datetime.now(datetime.timezone.utc)
    if bind.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    networks = sa.table('networks', sa.column('id'), sa.column('kind'), sa.column('cidr'), sa.column('vpc_pk'),
                        sa.column('owner'), sa.column('is_default'))
    vpcs = sa.table('vpcs', sa.column('id'), sa.column('vpc_id'), sa.column('owner'), sa.column('cidr'),
                    sa.column('is_default'), sa.column('shared'), sa.column('state'), sa.column('dns_support'),
                    sa.column('dns_hostnames'), sa.column('created_at'))
    rows = bind.execute(sa.select(networks.c.id, networks.c.cidr).where(networks.c.kind == 'private')).all()
    for network_id, cidr in rows:
        vpc_id = f'vpc-{secrets.token_hex(9)[:17]}'
        bind.execute(vpcs.insert().values(vpc_id=vpc_id, owner=CLOUD_ACCOUNT, cidr=cidr, is_default=False, shared=True,
                                          state='available', dns_support=True, dns_hostnames=False, created_at=now))
        pk = bind.execute(sa.select(vpcs.c.id).where(vpcs.c.vpc_id == vpc_id)).scalar_one()
        bind.execute(networks.update().where(networks.c.id == network_id)
                     .values(vpc_pk=pk, owner=CLOUD_ACCOUNT, is_default=False))


def downgrade():
    with op.batch_alter_table('leases') as batch:
        batch.drop_constraint(op.f('uq_leases_network_id_mac'), type_='unique')
        batch.create_unique_constraint(op.f('uq_leases_mac'), ['mac'])
    with op.batch_alter_table('networks') as batch:
        batch.drop_index('ix_networks_owner')
        batch.drop_index('ix_networks_vpc_pk')
        batch.drop_constraint(op.f('fk_networks_vpc_pk_vpcs'), type_='foreignkey')
        batch.drop_column('map_public_ip')
        batch.drop_column('zone')
        batch.drop_column('owner')
        batch.drop_column('vpc_pk')
    op.drop_table('vpcs')
