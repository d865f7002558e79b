"""Users' X.509 certificates for SOAP requests, and the replay cache of accepted signatures.

Revision ID: 0019_certificates
Revises: 0018_instance_migration
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0019_certificates'
down_revision = '0018_instance_migration'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_certificates',
        sa.Column('certificate_id', sa.String(64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('certificate_pem', sa.Text(), nullable=False),
        sa.Column('subject', sa.String(512), nullable=False),
        sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
        sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
        sa.Column('issued_here', sa.Boolean(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_user_certificates_user_id_users')),
        sa.PrimaryKeyConstraint('certificate_id', name=op.f('pk_user_certificates')),
    )
    op.create_index(op.f('ix_user_certificates_user_id'), 'user_certificates', ['user_id'])
    op.create_table(
        'seen_signatures',
        sa.Column('digest', sa.String(64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('digest', name=op.f('pk_seen_signatures')),
    )
    op.create_index(op.f('ix_seen_signatures_expires_at'), 'seen_signatures', ['expires_at'])


def downgrade():
    op.drop_index(op.f('ix_seen_signatures_expires_at'), table_name='seen_signatures')
    op.drop_table('seen_signatures')
    op.drop_index(op.f('ix_user_certificates_user_id'), table_name='user_certificates')
    op.drop_table('user_certificates')
