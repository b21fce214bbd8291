"""live_listings.withdrawn_at, one listing per product and session, users.phone

Revision ID: 0017_buyer
Revises: 0016_console

A streamer may withdraw a listing while live (what is left goes back to the product);
the withdrawn row stays for the orders that point at it. A product is listed once per
session: a partial unique index over the listings not withdrawn (both PostgreSQL and
SQLite have partial indexes, so no table copy is needed). ``users.phone``: the
optional phone a buyer gives at sign-up, offered for delivery.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_buyer"
down_revision = "0016_console"
branch_labels = None
depends_on = None

NOT_WITHDRAWN = sa.text("withdrawn_at IS NULL")


def upgrade():
    op.add_column("users", sa.Column("phone", sa.String(40), nullable=True))
    op.add_column("live_listings", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "uq_live_listings_session_product",
        "live_listings",
        ["session_id", "product_id"],
        unique=True,
        postgresql_where=NOT_WITHDRAWN,
        sqlite_where=NOT_WITHDRAWN,
    )


def downgrade():
    op.drop_index("uq_live_listings_session_product", table_name="live_listings")
    op.drop_column("live_listings", "withdrawn_at")
    op.drop_column("users", "phone")
