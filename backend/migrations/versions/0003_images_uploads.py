"""Images: uploads waiting for RegisterImage; why an image failed; when it was deregistered and reclaimed.

Revision ID: 0003_images_uploads
Revises: 0002_compute
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_images_uploads'
down_revision = '0002_compute'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('uploads',
    sa.Column('upload_id', sa.String(length=24), nullable=False),
    sa.Column('owner', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('image_type', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('declared_format', sa.String(length=16), nullable=True),
    sa.Column('total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('disk_format', sa.String(length=16), nullable=True),
    sa.Column('virtual_size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('upload_id', name=op.f('pk_uploads')),
    sa.UniqueConstraint('owner', 'name', name=op.f('uq_uploads_owner_name'))
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_owner'), ['owner'], unique=False)

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('deregistered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reclaimed_at', sa.DateTime(timezone=True), nullable=True))



def downgrade():
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('reclaimed_at')
        batch_op.drop_column('deregistered_at')
        batch_op.drop_column('state_reason')

    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uploads_owner'))

    op.drop_table('uploads')
