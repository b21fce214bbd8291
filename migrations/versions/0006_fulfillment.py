"""fulfillment: workshops, packing tasks, earnings

Revision ID: 0006_fulfillment
Revises: 0005_contracts
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_fulfillment'
down_revision = '0005_contracts'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
