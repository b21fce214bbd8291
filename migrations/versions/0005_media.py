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
    pass


def downgrade():
    pass
