"""Security groups, their rules, and which interfaces are members. Every existing interface joins
the default group of its VPC and account, made here as on AWS (all traffic within the group, all
egress).

Revision ID: 0011_security_groups
Revises: 0010_public_ips_at_launch
Create Date: 2026-12-05
"""
import datetime
import secrets

from alembic import op
import sqlalchemy as sa


revision = '0011_security_groups'
down_revision = '0010_public_ips_at_launch'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'security_groups',
        sa.Column('group_id', sa.String(21), nullable=False),
        sa.Column('owner', sa.String(12), nullable=False),
        sa.Column('vpc_pk', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(255), nullable=False),
        sa.Column('description', sa.String(255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['vpc_pk'], ['vpcs.id'], name=op.f('fk_security_groups_vpc_pk_vpcs')),
        sa.PrimaryKeyConstraint('group_id', name=op.f('pk_security_groups')),
        sa.UniqueConstraint('vpc_pk', 'owner', 'name', name=op.f('uq_security_groups_vpc_pk_owner_name')),
    )
    op.create_index('ix_security_groups_owner', 'security_groups', ['owner'])
    op.create_index('ix_security_groups_vpc_pk', 'security_groups', ['vpc_pk'])
    op.create_table(
        'security_group_rules',
        sa.Column('rule_id', sa.String(22), nullable=False),
        sa.Column('group_id', sa.String(21), nullable=False),
        sa.Column('egress', sa.Boolean(), nullable=False),
        sa.Column('protocol', sa.String(8), nullable=False),
        sa.Column('from_port', sa.Integer(), nullable=True),
        sa.Column('to_port', sa.Integer(), nullable=True),
        sa.Column('cidr', sa.String(43), nullable=True),
        sa.Column('peer_group_id', sa.String(21), nullable=True),
        sa.Column('description', sa.String(255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['group_id'], ['security_groups.group_id'],
                                name=op.f('fk_security_group_rules_group_id_security_groups'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['peer_group_id'], ['security_groups.group_id'],
                                name=op.f('fk_security_group_rules_peer_group_id_security_groups')),
        sa.PrimaryKeyConstraint('rule_id', name=op.f('pk_security_group_rules')),
    )
    op.create_index('ix_security_group_rules_group_id', 'security_group_rules', ['group_id'])
    op.create_index('ix_security_group_rules_peer_group_id', 'security_group_rules', ['peer_group_id'])
    op.create_table(
        'interface_groups',
        sa.Column('interface_id', sa.String(21), nullable=False),
        sa.Column('group_id', sa.String(21), nullable=False),
        sa.ForeignKeyConstraint(['interface_id'], ['network_interfaces.interface_id'],
                                name=op.f('fk_interface_groups_interface_id_network_interfaces'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['group_id'], ['security_groups.group_id'],
                                name=op.f('fk_interface_groups_group_id_security_groups')),
        sa.PrimaryKeyConstraint('interface_id', 'group_id', name=op.f('pk_interface_groups')),
    )
    op.create_index('ix_interface_groups_group_id', 'interface_groups', ['group_id'])
    _existing_interfaces_join_default_groups()


def _existing_interfaces_join_default_groups():
    bind = op.get_bind()
    now = datetime.datetime.now(datetime.timezone.utc)
    if bind.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    interfaces = sa.table('network_interfaces', sa.column('interface_id'), sa.column('owner'), sa.column('network_id'))
    networks = sa.table('networks', sa.column('id'), sa.column('vpc_pk'))
    groups = sa.table('security_groups', *(sa.column(name) for name in (
        'group_id', 'owner', 'vpc_pk', 'name', 'description', 'created_at')))
    rules = sa.table('security_group_rules', *(sa.column(name) for name in (
        'rule_id', 'group_id', 'egress', 'protocol', 'from_port', 'to_port', 'cidr', 'peer_group_id', 'description',
        'created_at')))
    members = sa.table('interface_groups', sa.column('interface_id'), sa.column('group_id'))
    made = {}
    for interface_id, owner, vpc_pk in bind.execute(
            sa.select(interfaces.c.interface_id, interfaces.c.owner, networks.c.vpc_pk)
            .join(networks, networks.c.id == interfaces.c.network_id)).all():
        if (vpc_pk, owner) not in made:
            group_id = made[vpc_pk, owner] = f'sg-{secrets.token_hex(9)[:17]}'
            bind.execute(groups.insert().values(group_id=group_id, owner=owner, vpc_pk=vpc_pk, name='default',
                                                description='default VPC security group', created_at=now))
            for egress, peer, cidr in ((False, group_id, None), (True, None, '0.0.0.0/0')):
                bind.execute(rules.insert().values(
                    rule_id=f'sgr-{secrets.token_hex(9)[:17]}', group_id=group_id, egress=egress, protocol='-1',
                    from_port=None, to_port=None, cidr=cidr, peer_group_id=peer, description='', created_at=now))
        bind.execute(members.insert().values(interface_id=interface_id, group_id=made[vpc_pk, owner]))


def downgrade():
    op.drop_table('interface_groups')
    op.drop_table('security_group_rules')
    op.drop_table('security_groups')
