"""session covers: live_sessions.cover_media_id → media

Revision ID: 0008_session_covers
Revises: 0007_fulfillment

SQLite: no batch "move and copy" here. Copying live_sessions means DROP TABLE
live_sessions, which SQLite refuses (foreign keys are on) as soon as a listing
points at a session — deferring the keys only moves the failure to COMMIT. SQLite
adds a nullable column with a named inline REFERENCES in place, and (3.35+) drops
it in place, so a populated demo database upgrades and downgrades as it is.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_session_covers"
down_revision = "0007_fulfillment"
branch_labels = None
depends_on = None

FK_NAME = "fk_live_sessions_cover_media_id_media"  # shop.db naming convention


def _sqlite():
    return op.get_bind().dialect.name == "sqlite"


def upgrade():
    if _sqlite():
        op.execute(
            "ALTER TABLE live_sessions ADD COLUMN cover_media_id INTEGER "
            f"CONSTRAINT {FK_NAME} REFERENCES media (id)"
        )
        return
    op.add_column("live_sessions", sa.Column("cover_media_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f(FK_NAME), "live_sessions", "media", ["cover_media_id"], ["id"])


def downgrade():
    if _sqlite():
        op.execute("ALTER TABLE live_sessions DROP COLUMN cover_media_id")
        return
    op.drop_constraint(op.f(FK_NAME), "live_sessions", type_="foreignkey")
    op.drop_column("live_sessions", "cover_media_id")
