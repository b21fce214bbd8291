"""payments: payment records, processed webhook events

Revision ID: 0004_payments
Revises: 0003_shop
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_payments'
down_revision = '0003_shop'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
