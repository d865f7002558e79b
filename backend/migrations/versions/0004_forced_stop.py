"""Instances remember a forced stop (StopInstances Force), so the worker powers them off at once.

Revision ID: 0004_forced_stop
Revises: 0003_images_uploads
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_forced_stop'
down_revision = '0003_images_uploads'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stop_forced', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('stop_forced')
