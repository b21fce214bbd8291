"""product owners; 64-bit columns for values that can pass 2³¹ − 1

Revision ID: 0010_product_owner
Revises: 0009_queue_by_age

``products.owner_id``: the streamer who created the product (NULL: a house product,
created by an admin). Existing products become house products: nobody can say now
which streamer made them, and an admin can still change every one.

BIGINT for the values a user's input can push past 2³¹ − 1: a packing task's piece
rate and expected weight and the ledger entry that pays it (sums of qty × rate), and
product stock (added by hand without a ceiling). PostgreSQL rewrites these tables
while it holds their lock. SQLite already stores every INTEGER in 64 bits, and could
change a declared type only by copying the table (refused while other rows point at
it, see 0008); the models declare these columns INTEGER there (``shop.db.BigInt``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_product_owner"
down_revision = "0009_queue_by_age"
branch_labels = None
depends_on = None

FK_NAME = "fk_products_owner_id_users"  # shop.db naming convention

#: table, column: widened to BIGINT on PostgreSQL
WIDENED = [
    ("products", "stock"),
    ("stock_movements", "stock_after"),
    ("packing_tasks", "piece_rate_fen"),
    ("packing_tasks", "expected_weight_g"),
    ("earning_entries", "amount_fen"),
]


def _sqlite():
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if _sqlite():
        op.execute(
            f"ALTER TABLE products ADD COLUMN owner_id INTEGER CONSTRAINT {FK_NAME} "
            "REFERENCES users (id)"
        )
    else:
        op.add_column("products", sa.Column("owner_id", sa.Integer(), nullable=True))
        op.create_foreign_key(op.f(FK_NAME), "products", "users", ["owner_id"], ["id"])
        for table, column in WIDENED:
            op.alter_column(
                table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), nullable=False
            )
    op.create_index("ix_products_owner_id", "products", ["owner_id"])


def downgrade():
    op.drop_index("ix_products_owner_id", table_name="products")
    if _sqlite():
        op.execute("ALTER TABLE products DROP COLUMN owner_id")
        return
    for table, column in WIDENED:
        # fails, as it should, while a value does not fit in 32 bits
        op.alter_column(
            table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), nullable=False
        )
    op.drop_constraint(op.f(FK_NAME), "products", type_="foreignkey")
    op.drop_column("products", "owner_id")
