"""fulfillment: workshops, packing tasks, earnings

Revision ID: 0007_fulfillment
Revises: 0006_contracts
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_fulfillment'
down_revision = '0006_contracts'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
