"""Workshops, their members and their skills, packing tasks (parcels and piece-work
batches), partner firms and their work orders, and the append-only earnings ledger."""

from __future__ import annotations

from datetime import date, datetime
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


class TaskKind(StrEnum):
    PARCEL = "parcel"  #: a paid order to pack
    BATCH = "batch"  #: a batch of a partner firm's work order (来料加工)


class WorkOrderState(StrEnum):
    OPEN = "open"
    DONE = "done"  #: every piece is done


MIN_LEVEL, MAX_LEVEL = 1, 3  #: skill levels per task kind
MAX_BONUS_BP = 10_000  #: a level's bonus is at most +100 %


class Workshop(Base):
    """A common-prosperity workshop (共富工坊) where villagers pack parcels by the piece."""

    __tablename__ = "workshops"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    village: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    #: employs disabled workers (the county's impact report counts these apart)
    serves_disabled: Mapped[bool] = mapped_column(default=False)
    #: the bonus of a level-2 / level-3 worker, basis points over the task's base rate
    level2_bonus_bp: Mapped[int] = mapped_column(default=0)
    level3_bonus_bp: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[WorkshopMember]] = relationship(
        back_populates="workshop", cascade="all, delete-orphan"
    )


class WorkshopMember(Base):
    """A villager working at a workshop. Claims lock the villager's membership rows, so
    one villager's concurrent claims are serialized (``MAX_CLAIMS_PER_VILLAGER``)."""

    __tablename__ = "workshop_members"
    __table_args__ = (
        Index("ix_workshop_members_user_id", "user_id"),
        CheckConstraint(
            f"parcel_level BETWEEN {MIN_LEVEL} AND {MAX_LEVEL}", name="parcel_level_known"
        ),
        CheckConstraint(
            f"batch_level BETWEEN {MIN_LEVEL} AND {MAX_LEVEL}", name="batch_level_known"
        ),
    )

    workshop_id: Mapped[int] = mapped_column(
        ForeignKey("workshops.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    #: may see the workshop's report and work orders, set levels and record trainings
    lead: Mapped[bool] = mapped_column(default=False)
    parcel_level: Mapped[int] = mapped_column(default=1)  #: skill level for parcels, 1…3
    batch_level: Mapped[int] = mapped_column(default=1)  #: skill level for batches, 1…3
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    workshop: Mapped[Workshop] = relationship(back_populates="members")


class PackingTask(Base):
    """One unit of work in a workshop's queue: a paid order to pack (``parcel``) or a
    batch of a work order (``batch``). Lines, base rate and expected weight are copied
    here when the task is created, so a later price or rate change never alters what was
    promised; the claimer's bonus is fixed when it is claimed."""

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
        CheckConstraint("kind IN ('parcel', 'batch')", name="kind_known"),
        CheckConstraint(
            "(kind = 'parcel' AND order_id IS NOT NULL AND paid_at IS NOT NULL) OR "
            "(kind = 'batch' AND work_order_id IS NOT NULL AND pieces > 0)",
            name="parcel_has_order_batch_has_work_order",
        ),
        CheckConstraint("bonus_bp >= 0 AND bonus_fen >= 0", name="bonus_not_negative"),
        # The queue, by due time: what is due first is served first, whatever its kind
        # (fulfillment.claims says how parcels are never starved). An order only this
        # index gives, so the claim never scans packed tasks (migration 0009 says why).
        Index(
            "ix_packing_tasks_queue",
            "workshop_id",
            "due_at",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        # The parcels of that queue alone: the claim's first look, for an overdue parcel.
        Index(
            "ix_packing_tasks_parcel_queue",
            "workshop_id",
            "due_at",
            "id",
            postgresql_where=text("state = 'queued' AND kind = 'parcel'"),
            sqlite_where=text("state = 'queued' AND kind = 'parcel'"),
        ),
        Index("ix_packing_tasks_work_order_id", "work_order_id"),
        Index("uq_packing_tasks_trace_code", "trace_code", unique=True),
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
    kind: Mapped[str] = mapped_column(String(10), default=TaskKind.PARCEL)
    #: the paid order a parcel packs (NULL for a batch)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    #: the work order a batch belongs to, and how many pieces it plans (NULL for a parcel)
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id"))
    pieces: Mapped[int | None]
    #: NULL while no workshop is active; assigned when one is created or reactivated
    workshop_id: Mapped[int | None] = mapped_column(ForeignKey("workshops.id"))
    state: Mapped[str] = mapped_column(String(20), default=TaskState.QUEUED)
    # 64-bit: both are sums of products of two inputs (up to 20 lines × 999 units ×
    # ¥1,000,000 a unit) and are written by a handler after the order's commit, where
    # an overflow would leave a paid order unpacked
    #: Σ qty × packing_rate_fen, fixed at creation, integer fen
    #: (a batch: round_half_up(batch_rate_fen × pieces / batch_pieces)); the base rate
    piece_rate_fen: Mapped[int] = mapped_column(BigInt)
    expected_weight_g: Mapped[int] = mapped_column(BigInt)  #: Σ qty × unit_weight_g
    #: when the order was paid (for paid → packed times); NULL for a batch
    paid_at: Mapped[datetime | None]
    #: when it should be done: the queue's order (fulfillment.claims, "fairness")
    due_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: fixed at claim from the claimer's level for this kind and the workshop's bonus
    level: Mapped[int | None]
    bonus_bp: Mapped[int] = mapped_column(default=0)
    bonus_fen: Mapped[int] = mapped_column(BigInt, default=0)  #: on the full base rate
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    packed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    packed_at: Mapped[datetime | None]
    packed_weight_g: Mapped[int | None]  #: what the packer weighed, if they did
    #: packed weight off the expected by more than PACK_WEIGHT_TOLERANCE: someone should look
    needs_review: Mapped[bool] = mapped_column(default=False)
    #: a batch: the pieces done (fewer than planned: the rest is queued as a new batch)
    pieces_done: Mapped[int | None]
    #: a batch: what the partner owes for it, round_half_up(batch_price × done / batch)
    partner_fen: Mapped[int | None] = mapped_column(BigInt)
    #: a parcel: the code of its trace page (/t/{code}), printed on the slip's QR
    trace_code: Mapped[str | None] = mapped_column(String(16))
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


class PackingTaskLot(Base):
    """The lots a packed parcel drew its units from (first in, first out)."""

    __tablename__ = "packing_task_lots"
    __table_args__ = (
        CheckConstraint("qty > 0", name="qty_positive"),
        Index("ix_packing_task_lots_lot_id", "lot_id"),
    )

    task_id: Mapped[int] = mapped_column(
        ForeignKey("packing_tasks.id", ondelete="CASCADE"), primary_key=True
    )
    lot_id: Mapped[int] = mapped_column(ForeignKey("stock_lots.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    qty: Mapped[int]


class EarningEntry(Base):
    """The piece-rate ledger. Append-only: a row is never updated (a database trigger
    refuses it); a correction is a new row pointing at the one it corrects."""

    __tablename__ = "earning_entries"
    __table_args__ = (
        CheckConstraint("(task_id IS NULL) <> (corrects_id IS NULL)", name="piece_or_correction"),
        CheckConstraint("task_id IS NULL OR amount_fen >= 0", name="piece_not_negative"),
        CheckConstraint("amount_fen = base_fen + bonus_fen", name="base_plus_bonus"),
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
    amount_fen: Mapped[int] = mapped_column(BigInt)  #: integer fen: base_fen + bonus_fen
    base_fen: Mapped[int] = mapped_column(BigInt)  #: the task's base rate (pro rata if short)
    bonus_fen: Mapped[int] = mapped_column(BigInt)  #: the claimer's skill bonus on it
    level: Mapped[int | None]  #: the claimer's level when they claimed it
    reason: Mapped[str | None] = mapped_column(String(200))
    earned_at: Mapped[datetime] = mapped_column(default=utcnow)


class Partner(Base):
    """A local firm that sends piece work (来料加工) to the workshops."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkOrder(Base):
    """A partner's order for a workshop: ``pieces`` of ``item`` in batches of
    ``batch_pieces``; the worker earns ``batch_rate_fen`` and the partner pays
    ``batch_price_fen`` per full batch (pro rata, half up, for a short one)."""

    __tablename__ = "work_orders"
    __table_args__ = (
        CheckConstraint("pieces > 0 AND batch_pieces > 0", name="pieces_positive"),
        CheckConstraint("batch_rate_fen >= 0 AND batch_price_fen >= 0", name="money_not_negative"),
        CheckConstraint("state IN ('open', 'done')", name="state_known"),
        Index("ix_work_orders_partner_id", "partner_id"),
        Index("ix_work_orders_workshop_id", "workshop_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    item: Mapped[str] = mapped_column(String(200))  #: e.g. "铅笔包装 pencils, 12 a box"
    pieces: Mapped[int]
    batch_pieces: Mapped[int]
    batch_rate_fen: Mapped[int]  #: the worker's wage for a full batch, integer fen
    batch_price_fen: Mapped[int]  #: what the partner pays for a full batch, integer fen
    due_on: Mapped[date]
    state: Mapped[str] = mapped_column(String(10), default=WorkOrderState.OPEN)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]


class SkillChange(Base):
    """A level set for a member and a task kind: who set it and why (a training, a
    competition). Kept forever; the member row holds the current level."""

    __tablename__ = "skill_changes"
    __table_args__ = (Index("ix_skill_changes_workshop_id_user_id", "workshop_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(10))
    from_level: Mapped[int]
    to_level: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    changed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Training(Base):
    """A training held at a workshop, and who attended."""

    __tablename__ = "trainings"
    __table_args__ = (Index("ix_trainings_workshop_id_held_on", "workshop_id", "held_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workshop_id: Mapped[int] = mapped_column(ForeignKey("workshops.id"))
    title: Mapped[str] = mapped_column(String(200))
    held_on: Mapped[date]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    attendees: Mapped[list[TrainingAttendee]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="TrainingAttendee.user_id"
    )


class TrainingAttendee(Base):
    __tablename__ = "training_attendees"

    training_id: Mapped[int] = mapped_column(
        ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
