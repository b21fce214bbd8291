"""packing queue index: (workshop_id, created_at, id) for queued tasks

Revision ID: 0009_queue_by_age
Revises: 0008_session_covers

The claim takes the oldest queued task: ``ORDER BY created_at, id LIMIT 1``. With the
old (workshop_id, id) index, ``ORDER BY id`` could also be served by the primary key,
and PostgreSQL chose it whenever its statistics said most tasks were queued (a fresh
backlog, or autovacuum behind): the scan then stepped over every packed task before
the first queued one, so each claim got slower as the day's work got done (17 ms after
7,000 tasks in bench/claims.py). No other index gives this order, so the plan no
longer depends on the statistics.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_queue_by_age"
down_revision = "0008_session_covers"
branch_labels = None
depends_on = None

QUEUED = sa.text("state = 'queued'")


def upgrade():
    op.drop_index("ix_packing_tasks_queue", table_name="packing_tasks")
    op.create_index(
        "ix_packing_tasks_queue",
        "packing_tasks",
        ["workshop_id", "created_at", "id"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )


def downgrade():
    op.drop_index("ix_packing_tasks_queue", table_name="packing_tasks")
    op.create_index(
        "ix_packing_tasks_queue",
        "packing_tasks",
        ["workshop_id", "id"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
