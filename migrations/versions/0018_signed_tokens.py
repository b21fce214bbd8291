"""users.auth_changed_at and the indexes of the revocation poll: signed tokens

Revision ID: 0018_signed_tokens
Revises: 0017_buyer

Signed bearer tokens carry their caller, so with Redis a process lets one in without
reading the database; it must know every revocation instead, and polls for them a few
times a second (shop/accounts/revocations.py). ``users.auth_changed_at``: when a
user's roles, password or status changed, or all their tokens were revoked — a signed
token issued before is checked in the database. Both polls are range scans on partial
indexes (most tokens are never revoked, most users never change).
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_signed_tokens"
down_revision = "0017_buyer"
branch_labels = None
depends_on = None

REVOKED = sa.text("revoked_at IS NOT NULL")
CHANGED = sa.text("auth_changed_at IS NOT NULL")


def upgrade():
    op.add_column("users", sa.Column("auth_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_users_auth_changed_at",
        "users",
        ["auth_changed_at"],
        postgresql_where=CHANGED,
        sqlite_where=CHANGED,
    )
    op.create_index(
        "ix_api_tokens_revoked_at",
        "api_tokens",
        ["revoked_at"],
        postgresql_where=REVOKED,
        sqlite_where=REVOKED,
    )


def downgrade():
    op.drop_index("ix_api_tokens_revoked_at", table_name="api_tokens")
    op.drop_index("ix_users_auth_changed_at", table_name="users")
    op.drop_column("users", "auth_changed_at")
