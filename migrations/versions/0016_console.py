"""users.active and packing_tasks.lease_extended: the operator's console

Revision ID: 0016_console
Revises: 0015_pieces

``users.active``: an operator deactivates a user instead of deleting them (their
orders, deliveries and earnings stay theirs); a deactivated user's tokens and page
sessions stop working and they cannot sign in. ``packing_tasks.lease_extended``: a
villager may renew the lease of their claim once (``POST …/extend``); a new claim
starts unextended.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_console"
down_revision = "0015_pieces"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("packing_tasks") as batch:
        batch.add_column(
            sa.Column("lease_extended", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade():
    with op.batch_alter_table("packing_tasks") as batch:
        batch.drop_column("lease_extended")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("active")
