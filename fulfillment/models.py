"""Workshops, their members, packing tasks and the append-only earnings ledger."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, BigInt, utcnow


class TaskState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    PACKED = "packed"
    CANCELLED = "cancelled"  #: the order was cancelled or refunded before anyone claimed it


TASK_STATE_VALUES = ", ".join(f"'{s.value}'" for s in TaskState)


class Workshop(Base):
    """A common-prosperity workshop (共富工坊) where villagers pack parcels by the piece."""

    __tablename__ = "workshops"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    village: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[WorkshopMember]] = relationship(
        back_populates="workshop", cascade="all, delete-orphan"
    )


class WorkshopMember(Base):
    """A villager working at a workshop. Claims lock the villager's membership rows, so
    one villager's concurrent claims are serialized (``MAX_CLAIMS_PER_VILLAGER``)."""

    __tablename__ = "workshop_members"
    __table_args__ = (Index("ix_workshop_members_user_id", "user_id"),)

    workshop_id: Mapped[int] = mapped_column(
        ForeignKey("workshops.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    lead: Mapped[bool] = mapped_column(default=False)  #: may see the workshop's report
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    workshop: Mapped[Workshop] = relationship(back_populates="members")


class PackingTask(Base):
    """One paid order to pack. Lines, piece rate and expected weight are copied here when
    the task is created, so a later price or rate change never alters what was promised."""

    __tablename__ = "packing_tasks"
    __table_args__ = (
        CheckConstraint(f"state IN ({TASK_STATE_VALUES})", name="state_known"),
        CheckConstraint("piece_rate_fen >= 0", name="piece_rate_not_negative"),
        CheckConstraint("expected_weight_g >= 0", name="expected_weight_not_negative"),
        CheckConstraint(
            "state <> 'claimed' OR (claimed_by IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="claim_has_claimer_and_lease",
        ),
        CheckConstraint(
            "state <> 'packed' OR (packed_by IS NOT NULL AND packed_at IS NOT NULL)",
            name="packed_has_packer",
        ),
        # The queue: the oldest queued task of a workshop is the first entry. Ordered
        # by age, which no other index gives, so the claim never scans packed tasks
        # (migration 0009 says why).
        Index(
            "ix_packing_tasks_queue",
            "workshop_id",
            "created_at",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        # Leases to expire, and the claims a villager holds.
        Index(
            "ix_packing_tasks_lease",
            "lease_expires_at",
            postgresql_where=text("state = 'claimed'"),
            sqlite_where=text("state = 'claimed'"),
        ),
        Index(
            "ix_packing_tasks_claimed_by",
            "claimed_by",
            postgresql_where=text("state = 'claimed'"),
            sqlite_where=text("state = 'claimed'"),
        ),
        Index("ix_packing_tasks_workshop_packed_at", "workshop_id", "packed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    #: NULL while no workshop is active; assigned when one is created or reactivated
    workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"))
    state: Mapped[str] = mapped_column(String(20), default=TaskState.QUEUED)
    # 64-bit: both are sums of products of two inputs (up to 20 lines × 999 units ×
    # ¥1,000,000 a unit) and are written by a handler after the order's commit, where
    # an overflow would leave a paid order unpacked
    #: Σ qty × packing_rate_fen, fixed at creation, integer fen
    piece_rate_fen: Mapped[int] = mapped_column(BigInt)
    expected_weight_g: Mapped[int] = mapped_column(BigInt)  #: Σ qty × unit_weight_g
    paid_at: Mapped[datetime]  #: when the order was paid (for paid → packed times)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    packed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    packed_at: Mapped[datetime | None]
    packed_weight_g: Mapped[int | None]  #: what the packer weighed, if they did
    #: packed weight off the expected by more than PACK_WEIGHT_TOLERANCE: someone should look
    needs_review: Mapped[bool] = mapped_column(default=False)
    #: the claimer renewed this claim's lease (allowed once per claim; a new claim resets it)
    lease_extended: Mapped[bool] = mapped_column(default=False, server_default=false())

    lines: Mapped[list[PackingTaskLine]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="PackingTaskLine.id",
    )


class PackingTaskLine(Base):
    __tablename__ = "packing_task_lines"
    __table_args__ = (
        CheckConstraint("qty > 0", name="qty_positive"),
        Index("ix_packing_task_lines_task_id", "task_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("packing_tasks.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    name: Mapped[str] = mapped_column(String(200))  #: product name when the task was created
    unit_label: Mapped[str] = mapped_column(String(40))
    qty: Mapped[int]
    unit_weight_g: Mapped[int]
    packing_rate_fen: Mapped[int]  #: per unit, integer fen, as it was at creation

    task: Mapped[PackingTask] = relationship(back_populates="lines")


class EarningEntry(Base):
    """The piece-rate ledger. Append-only: a row is never updated (a database trigger
    refuses it); a correction is a new row pointing at the one it corrects."""

    __tablename__ = "earning_entries"
    __table_args__ = (
        CheckConstraint("(task_id IS NULL) <> (corrects_id IS NULL)", name="piece_or_correction"),
        CheckConstraint("task_id IS NULL OR amount_fen >= 0", name="piece_not_negative"),
        Index("ix_earning_entries_user_id_earned_at", "user_id", "earned_at"),
        Index("ix_earning_entries_workshop_id_earned_at", "workshop_id", "earned_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    #: the packed task this pays for: one entry per task, ever
    task_id: Mapped[int | None] = mapped_column(ForeignKey("packing_tasks.id"), unique=True)
    #: or the entry this one corrects (then amount_fen may be negative)
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("earning_entries.id"))
    amount_fen: Mapped[int] = mapped_column(BigInt)  #: integer fen: a task's piece rate
    reason: Mapped[str | None] = mapped_column(String(200))
    earned_at: Mapped[datetime] = mapped_column(default=utcnow)
