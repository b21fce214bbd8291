"""piece work, skill tiers and traceability

Revision ID: 0015_pieces
Revises: 0012_session_version

- Partner firms and their work orders (来料加工); a packing task gets a ``kind``
  (``parcel`` or ``batch``), a batch its work order and pieces, so both kinds wait in
  one queue. ``order_id`` and ``paid_at`` become NULL-able (a batch has no order).
- The queue is ordered by ``due_at`` (existing tasks: their ``paid_at``), with a
  second partial index holding only the queued parcels (fulfillment.claims says why).
- Skill levels per member and kind, the workshop's bonus per level, the history of
  level changes, trainings; the claimer's level and bonus on the task and the ledger
  (``base_fen`` + ``bonus_fen`` = ``amount_fen``; existing entries: all base).
- Lots (``stock_lots``), a delivery's lot, the lots a parcel drew from, the parcel's
  ``trace_code`` (on the task, and on the order once packed); ``serves_disabled``.

SQLite: no table copies (0008 says why: SQLite refuses to drop a table other rows
point at). Columns are added in place (named inline REFERENCES and CHECKs); dropping
the two NOT NULLs and adding the table CHECKs is SQLite's own documented way for
changes that leave the stored rows as they are: edit the table's SQL in
``sqlite_schema`` under ``writable_schema`` and bump ``schema_version``. The ledger's
append-only trigger is dropped for the one backfill UPDATE and created again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_pieces"
down_revision = "0012_session_version"
branch_labels = None
depends_on = None

QUEUED = sa.text("state = 'queued'")
QUEUED_PARCELS = sa.text("state = 'queued' AND kind = 'parcel'")

TASK_CHECKS = {
    "ck_packing_tasks_kind_known": "kind IN ('parcel', 'batch')",
    "ck_packing_tasks_parcel_has_order_batch_has_work_order": (
        "(kind = 'parcel' AND order_id IS NOT NULL AND paid_at IS NOT NULL) OR "
        "(kind = 'batch' AND work_order_id IS NOT NULL AND pieces > 0)"
    ),
    "ck_packing_tasks_bonus_not_negative": "bonus_bp >= 0 AND bonus_fen >= 0",
}
LEDGER_CHECK = ("ck_earning_entries_base_plus_bonus", "amount_fen = base_fen + bonus_fen")
LEVEL_CHECK = "{0} BETWEEN 1 AND 3"

#: (table, old text, new text) of the SQLite schema edits
NULLABLE_EDITS = [
    ("packing_tasks", "order_id INTEGER NOT NULL,", "order_id INTEGER,"),
    ("packing_tasks", "paid_at DATETIME NOT NULL,", "paid_at DATETIME,"),
]

SQLITE_NO_UPDATE_TRIGGER = (
    "CREATE TRIGGER earning_entries_no_update BEFORE UPDATE ON earning_entries "
    "BEGIN SELECT RAISE(ABORT, 'earning_entries is append-only: record a correction instead'); END"
)


def _sqlite():
    return op.get_bind().dialect.name == "sqlite"


def _edit_sqlite_schema(edits):
    """Replace the last occurrence of each text in a table's CREATE statement (see the
    module docstring)."""
    bind = op.get_bind()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    for table, old, new in edits:
        sql = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
        ).scalar()
        if old not in sql:
            raise RuntimeError(f"{table}: {old!r} not found in its schema")
        before, _, after = sql.rpartition(old)
        bind.exec_driver_sql(
            "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?",
            (before + new + after, table),
        )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _checks_text(checks):
    return "".join(f", \n\tCONSTRAINT {name} CHECK ({sql})" for name, sql in checks.items())


def _sqlite_add(table, column_sql):
    op.execute(f"ALTER TABLE {table} ADD COLUMN {column_sql}")


def upgrade():
    sqlite = _sqlite()
    op.create_table(
        "stock_lots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("received", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "remaining", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= received",
            name=op.f("ck_stock_lots_remaining_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_stock_lots_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_lots")),
        sa.UniqueConstraint("code", name=op.f("uq_stock_lots_code")),
    )
    op.create_index(
        "ix_stock_lots_product_id_received_at", "stock_lots", ["product_id", "received_at"]
    )
    op.create_table(
        "partners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("workshop_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.String(length=200), nullable=False),
        sa.Column("pieces", sa.Integer(), nullable=False),
        sa.Column("batch_pieces", sa.Integer(), nullable=False),
        sa.Column("batch_rate_fen", sa.Integer(), nullable=False),
        sa.Column("batch_price_fen", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "pieces > 0 AND batch_pieces > 0", name=op.f("ck_work_orders_pieces_positive")
        ),
        sa.CheckConstraint(
            "batch_rate_fen >= 0 AND batch_price_fen >= 0",
            name=op.f("ck_work_orders_money_not_negative"),
        ),
        sa.CheckConstraint("state IN ('open', 'done')", name=op.f("ck_work_orders_state_known")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_work_orders_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_work_orders_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["workshop_id"], ["workshops.id"], name=op.f("fk_work_orders_workshop_id_workshops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
    )
    op.create_index("ix_work_orders_partner_id", "work_orders", ["partner_id"])
    op.create_index("ix_work_orders_workshop_id", "work_orders", ["workshop_id"])
    op.create_table(
        "skill_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workshop_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("from_level", sa.Integer(), nullable=False),
        sa.Column("to_level", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("changed_by", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by"], ["users.id"], name=op.f("fk_skill_changes_changed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_skill_changes_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["workshop_id"],
            ["workshops.id"],
            name=op.f("fk_skill_changes_workshop_id_workshops"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_changes")),
    )
    op.create_index(
        "ix_skill_changes_workshop_id_user_id", "skill_changes", ["workshop_id", "user_id"]
    )
    op.create_table(
        "trainings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workshop_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_trainings_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workshop_id"], ["workshops.id"], name=op.f("fk_trainings_workshop_id_workshops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainings")),
    )
    op.create_index("ix_trainings_workshop_id_held_on", "trainings", ["workshop_id", "held_on"])
    op.create_table(
        "training_attendees",
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["training_id"],
            ["trainings.id"],
            name=op.f("fk_training_attendees_training_id_trainings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_training_attendees_user_id_users")
        ),
        sa.PrimaryKeyConstraint("training_id", "user_id", name=op.f("pk_training_attendees")),
    )

    # ------------------------------------------------------------ workshops, members
    op.add_column(
        "workshops",
        sa.Column("serves_disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    for column in ("level2_bonus_bp", "level3_bonus_bp"):
        op.add_column(
            "workshops", sa.Column(column, sa.Integer(), nullable=False, server_default="0")
        )
    for column in ("parcel_level", "batch_level"):
        name = f"ck_workshop_members_{column}_known"
        if sqlite:
            _sqlite_add(
                "workshop_members",
                f"{column} INTEGER NOT NULL DEFAULT 1 "
                f"CONSTRAINT {name} CHECK ({LEVEL_CHECK.format(column)})",
            )
        else:
            op.add_column(
                "workshop_members",
                sa.Column(column, sa.Integer(), nullable=False, server_default="1"),
            )
            op.create_check_constraint(
                op.f(name), "workshop_members", LEVEL_CHECK.format(column)
            )

    # ------------------------------------------------------------ packing tasks
    if sqlite:
        _sqlite_add("packing_tasks", "kind VARCHAR(10) NOT NULL DEFAULT 'parcel'")
        _sqlite_add(
            "packing_tasks",
            "work_order_id INTEGER CONSTRAINT fk_packing_tasks_work_order_id_work_orders "
            "REFERENCES work_orders (id)",
        )
        # every existing row gets its paid_at just below
        _sqlite_add("packing_tasks", "due_at DATETIME NOT NULL DEFAULT '2000-01-01 00:00:00'")
        for column_sql in (
            "pieces INTEGER",
            "level INTEGER",
            "bonus_bp INTEGER NOT NULL DEFAULT 0",
            "bonus_fen INTEGER NOT NULL DEFAULT 0",
            "pieces_done INTEGER",
            "partner_fen INTEGER",
            "trace_code VARCHAR(16)",
        ):
            _sqlite_add("packing_tasks", column_sql)
        op.execute("UPDATE packing_tasks SET due_at = paid_at")
        _edit_sqlite_schema(
            [
                *NULLABLE_EDITS,
                ("packing_tasks", "\n)", _checks_text(TASK_CHECKS) + "\n)"),
            ]
        )
    else:
        big = sa.BigInteger()
        op.add_column(
            "packing_tasks",
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="parcel"),
        )
        op.add_column("packing_tasks", sa.Column("work_order_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_packing_tasks_work_order_id_work_orders"),
            "packing_tasks",
            "work_orders",
            ["work_order_id"],
            ["id"],
        )
        op.add_column(
            "packing_tasks", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True)
        )
        op.execute("UPDATE packing_tasks SET due_at = paid_at")
        op.alter_column("packing_tasks", "due_at", nullable=False)
        op.alter_column("packing_tasks", "order_id", nullable=True)
        op.alter_column("packing_tasks", "paid_at", nullable=True)
        for column in (
            sa.Column("pieces", sa.Integer(), nullable=True),
            sa.Column("level", sa.Integer(), nullable=True),
            sa.Column("bonus_bp", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("bonus_fen", big, nullable=False, server_default="0"),
            sa.Column("pieces_done", sa.Integer(), nullable=True),
            sa.Column("partner_fen", big, nullable=True),
            sa.Column("trace_code", sa.String(length=16), nullable=True),
        ):
            op.add_column("packing_tasks", column)
        for name, sql in TASK_CHECKS.items():
            op.create_check_constraint(op.f(name), "packing_tasks", sql)
    op.create_index(
        "uq_packing_tasks_trace_code", "packing_tasks", ["trace_code"], unique=True
    )
    op.create_index("ix_packing_tasks_work_order_id", "packing_tasks", ["work_order_id"])
    op.drop_index("ix_packing_tasks_queue", table_name="packing_tasks")
    op.create_index(
        "ix_packing_tasks_queue",
        "packing_tasks",
        ["workshop_id", "due_at", "id"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
    op.create_index(
        "ix_packing_tasks_parcel_queue",
        "packing_tasks",
        ["workshop_id", "due_at", "id"],
        postgresql_where=QUEUED_PARCELS,
        sqlite_where=QUEUED_PARCELS,
    )

    op.create_table(
        "packing_task_lots",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.CheckConstraint("qty > 0", name=op.f("ck_packing_task_lots_qty_positive")),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["stock_lots.id"], name=op.f("fk_packing_task_lots_lot_id_stock_lots")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_packing_task_lots_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["packing_tasks.id"],
            name=op.f("fk_packing_task_lots_task_id_packing_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "lot_id", name=op.f("pk_packing_task_lots")),
    )
    op.create_index("ix_packing_task_lots_lot_id", "packing_task_lots", ["lot_id"])

    # ------------------------------------------------------------ the ledger
    if sqlite:
        for column_sql in (
            "base_fen INTEGER NOT NULL DEFAULT 0",
            "bonus_fen INTEGER NOT NULL DEFAULT 0",
            "level INTEGER",
        ):
            _sqlite_add("earning_entries", column_sql)
        op.execute("DROP TRIGGER earning_entries_no_update")
        op.execute("UPDATE earning_entries SET base_fen = amount_fen")
        op.execute(SQLITE_NO_UPDATE_TRIGGER)
        _edit_sqlite_schema(
            [("earning_entries", "\n)", _checks_text(dict([LEDGER_CHECK])) + "\n)")]
        )
    else:
        big = sa.BigInteger()
        op.add_column("earning_entries", sa.Column("base_fen", big, nullable=True))
        op.add_column(
            "earning_entries", sa.Column("bonus_fen", big, nullable=False, server_default="0")
        )
        op.add_column("earning_entries", sa.Column("level", sa.Integer(), nullable=True))
        op.execute("ALTER TABLE earning_entries DISABLE TRIGGER earning_entries_no_update")
        op.execute("UPDATE earning_entries SET base_fen = amount_fen")
        op.execute("ALTER TABLE earning_entries ENABLE TRIGGER earning_entries_no_update")
        op.alter_column("earning_entries", "base_fen", nullable=False)
        op.create_check_constraint(op.f(LEDGER_CHECK[0]), "earning_entries", LEDGER_CHECK[1])

    # ------------------------------------------------------------ deliveries, orders
    if sqlite:
        _sqlite_add(
            "deliveries",
            "lot_id INTEGER CONSTRAINT fk_deliveries_lot_id_stock_lots REFERENCES stock_lots (id)",
        )
    else:
        op.add_column("deliveries", sa.Column("lot_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_deliveries_lot_id_stock_lots"), "deliveries", "stock_lots", ["lot_id"], ["id"]
        )
    op.create_index("uq_deliveries_lot_id", "deliveries", ["lot_id"], unique=True)
    op.add_column("orders", sa.Column("trace_code", sa.String(length=16), nullable=True))


def downgrade():
    sqlite = _sqlite()
    op.drop_column("orders", "trace_code")
    op.drop_index("uq_deliveries_lot_id", table_name="deliveries")
    if not sqlite:
        op.drop_constraint(
            op.f("fk_deliveries_lot_id_stock_lots"), "deliveries", type_="foreignkey"
        )
    op.drop_column("deliveries", "lot_id")

    if sqlite:
        _edit_sqlite_schema(
            [("earning_entries", _checks_text(dict([LEDGER_CHECK])) + "\n)", "\n)")]
        )
    else:
        op.drop_constraint(op.f(LEDGER_CHECK[0]), "earning_entries", type_="check")
    for column in ("level", "bonus_fen", "base_fen"):
        op.drop_column("earning_entries", column)

    op.drop_index("ix_packing_task_lots_lot_id", table_name="packing_task_lots")
    op.drop_table("packing_task_lots")
    op.drop_index("ix_packing_tasks_parcel_queue", table_name="packing_tasks")
    op.drop_index("ix_packing_tasks_queue", table_name="packing_tasks")
    op.create_index(
        "ix_packing_tasks_queue",
        "packing_tasks",
        ["workshop_id", "created_at", "id"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
    op.drop_index("ix_packing_tasks_work_order_id", table_name="packing_tasks")
    op.drop_index("uq_packing_tasks_trace_code", table_name="packing_tasks")
    # batches cannot stay once a task must have an order again
    op.execute("DELETE FROM packing_tasks WHERE kind = 'batch'")
    if sqlite:
        _edit_sqlite_schema(
            [
                *[(table, new, old) for table, old, new in NULLABLE_EDITS],
                ("packing_tasks", _checks_text(TASK_CHECKS) + "\n)", "\n)"),
            ]
        )
    else:
        for name in TASK_CHECKS:
            op.drop_constraint(op.f(name), "packing_tasks", type_="check")
        op.alter_column("packing_tasks", "order_id", nullable=False)
        op.alter_column("packing_tasks", "paid_at", nullable=False)
        op.drop_constraint(
            op.f("fk_packing_tasks_work_order_id_work_orders"), "packing_tasks", type_="foreignkey"
        )
    for column in (
        "trace_code",
        "partner_fen",
        "pieces_done",
        "bonus_fen",
        "bonus_bp",
        "level",
        "pieces",
        "due_at",
        "work_order_id",
        "kind",
    ):
        op.drop_column("packing_tasks", column)

    for column in ("batch_level", "parcel_level"):
        name = f"ck_workshop_members_{column}_known"
        if not sqlite:
            op.drop_constraint(op.f(name), "workshop_members", type_="check")
        else:
            _edit_sqlite_schema(
                [
                    (
                        "workshop_members",
                        f" CONSTRAINT {name} CHECK ({LEVEL_CHECK.format(column)})",
                        "",
                    )
                ]
            )
        op.drop_column("workshop_members", column)
    for column in ("level3_bonus_bp", "level2_bonus_bp", "serves_disabled"):
        op.drop_column("workshops", column)

    op.drop_table("training_attendees")
    op.drop_index("ix_trainings_workshop_id_held_on", table_name="trainings")
    op.drop_table("trainings")
    op.drop_index("ix_skill_changes_workshop_id_user_id", table_name="skill_changes")
    op.drop_table("skill_changes")
    op.drop_index("ix_work_orders_workshop_id", table_name="work_orders")
    op.drop_index("ix_work_orders_partner_id", table_name="work_orders")
    op.drop_table("work_orders")
    op.drop_table("partners")
    op.drop_index("ix_stock_lots_product_id_received_at", table_name="stock_lots")
    op.drop_table("stock_lots")
