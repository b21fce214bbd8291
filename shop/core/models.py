"""The outbox: one row per (domain event, subscribed handler), written in the
transaction that caused the event, kept until the handler has done its work."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, utcnow


class OutboxState(StrEnum):
    PENDING = "pending"  #: not acknowledged yet: relayed, and sent again when due
    DONE = "done"  #: the handler's work committed together with this state
    DEAD = "dead"  #: failed ``OUTBOX_MAX_ATTEMPTS`` times; waits for an operator


OUTBOX_STATE_VALUES = ", ".join(f"'{s.value}'" for s in OutboxState)


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint(f"state IN ({OUTBOX_STATE_VALUES})", name="state_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The sweep's query: pending rows by due time. Done rows (nearly all) stay out.
        Index(
            "ix_outbox_events_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "ix_outbox_events_dead",
            "id",
            postgresql_where=text("state = 'dead'"),
            sqlite_where=text("state = 'dead'"),
        ),
    )

    # SQLite numbers rows only for a column declared exactly INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event: Mapped[str] = mapped_column(String(100))  #: e.g. ``order.paid``
    handler: Mapped[str] = mapped_column(String(200))  #: the stable name it was subscribed by
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  #: ids only, as given to ``emit``
    state: Mapped[str] = mapped_column(String(10), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)  #: deliveries that ran the handler
    #: while pending: when the sweep sends it (again) if it is still not done by then
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]
