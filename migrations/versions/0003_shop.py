"""shop: live sessions, orders, payments

Revision ID: 0003_shop
Revises: 0002_catalog
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_shop'
down_revision = '0002_catalog'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
