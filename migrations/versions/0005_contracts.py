"""contracts: farmers, market prices, contracts, deliveries, payouts

Revision ID: 0005_contracts
Revises: 0004_media
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_contracts'
down_revision = '0004_media'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
