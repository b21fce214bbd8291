"""users.session_version: page sessions that end on the server

Revision ID: 0012_session_version
Revises: 0011_outbox

A page cookie carries the user's ``session_version`` from when it was issued; every
page request compares it with the row. Signing out, "sign out everywhere" and a
password change add one, so every cookie issued before is refused, wherever it was
saved (Flask's cookie sessions live only in the browser, so the server had no other
way to end one).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_session_version"
down_revision = "0011_outbox"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
