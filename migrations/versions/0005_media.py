"""media: images, renditions, product images

Revision ID: 0005_media
Revises: 0004_payments
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_media'
down_revision = '0004_payments'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('media',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("content_type IN ('image/jpeg', 'image/png', 'image/webp')", name=op.f('ck_media_content_type_known')),
    sa.CheckConstraint('width > 0 AND height > 0', name=op.f('ck_media_dimensions_positive')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_media_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media')),
    sa.UniqueConstraint('sha256', name=op.f('uq_media_sha256'))
    )
    op.create_table('media_renditions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_renditions_media_id_media'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_renditions')),
    sa.UniqueConstraint('media_id', 'name', name=op.f('uq_media_renditions_media_id_name'))
    )
    op.create_index(op.f('ix_media_renditions_key'), 'media_renditions', ['key'], unique=False)
    op.create_table('product_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_product_images_media_id_media')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_images_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_images')),
    sa.UniqueConstraint('product_id', 'media_id', name=op.f('uq_product_images_product_id_media_id'))
    )
    op.create_index('ix_product_images_product_id_position', 'product_images', ['product_id', 'position'], unique=False)


def downgrade():
    op.drop_index('ix_product_images_product_id_position', table_name='product_images')
    op.drop_table('product_images')
    op.drop_index(op.f('ix_media_renditions_key'), table_name='media_renditions')
    op.drop_table('media_renditions')
    op.drop_table('media')
