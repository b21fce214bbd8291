"""contracts: farmers, market prices, contracts, deliveries, payouts

Revision ID: 0006_contracts
Revises: 0005_media
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_contracts'
down_revision = '0005_media'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
