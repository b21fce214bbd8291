"""Skill tiers: a member's level per task kind (1–3), the workshop's bonus per level,
the history of level changes, trainings, and what the report shows of them.

Who decides: an admin anywhere; a workshop's lead in their own workshop only, and
never their own level (a lead does not set their own pay). Only an admin names the
lead and sets the bonuses (a bonus is a wage, as a packing rate is). Every level change
is kept with who made it and why. A level change never touches a task already claimed:
the claim fixed its rate (``claims.claim_next``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select

from fulfillment.earnings import DayRange
from fulfillment.errors import NotAMember
from fulfillment.models import (
    EarningEntry,
    SkillChange,
    TaskKind,
    Training,
    TrainingAttendee,
    Workshop,
    WorkshopMember,
)
from fulfillment.service import get_workshop, membership
from shop.accounts.models import Principal, Role
from shop.db import DbSession, utcnow
from shop.errors import Forbidden, NotFound, ValidationFailed
from shop.i18n import _l


def check_admin_or_lead(session: DbSession, workshop_id: int, user: Principal) -> Workshop:
    """Admins, and the lead of this workshop. Raises NotFound, Forbidden."""
    workshop = get_workshop(session, workshop_id)
    if user.has_role(Role.ADMIN):
        return workshop
    member = membership(session, workshop_id, user.id)
    if member is None or not member.lead or not user.has_role(Role.VILLAGER):
        raise Forbidden(
            _l(
                "Only an admin or the lead of workshop %(workshop_id)s may do that.",
                workshop_id=workshop_id,
            )
        )
    return workshop


def get_member(session: DbSession, workshop_id: int, user_id: int) -> WorkshopMember:
    """The membership. Raises NotFound."""
    member = membership(session, workshop_id, user_id)
    if member is None:
        raise NotFound(
            _l(
                "User %(user_id)s is not a member of workshop %(workshop_id)s.",
                user_id=user_id,
                workshop_id=workshop_id,
            )
        )
    return member


def set_level(
    session: DbSession,
    workshop_id: int,
    user_id: int,
    *,
    kind: str,
    level: int,
    reason: str,
    by: Principal,
) -> WorkshopMember:
    """Set a member's level for a task kind, keeping who and why. Raises NotFound,
    Forbidden (neither admin nor this workshop's lead; a lead's own level)."""
    check_admin_or_lead(session, workshop_id, by)
    if by.id == user_id and not by.has_role(Role.ADMIN):
        raise Forbidden(_l("A lead does not set their own level; an admin does."))
    member = get_member(session, workshop_id, user_id)
    column = "batch_level" if kind == TaskKind.BATCH else "parcel_level"
    before = getattr(member, column)
    setattr(member, column, level)
    session.add(
        SkillChange(
            workshop_id=workshop_id,
            user_id=user_id,
            kind=kind,
            from_level=before,
            to_level=level,
            reason=reason,
            changed_by=by.id,
            changed_at=utcnow(),
        )
    )
    session.flush()
    return member


def set_lead(session: DbSession, workshop_id: int, user_id: int, *, lead: bool) -> WorkshopMember:
    """Name a member the workshop's lead, or no longer (admins). Raises NotFound."""
    member = get_member(session, workshop_id, user_id)
    member.lead = lead
    return member


def set_bonus(session: DbSession, workshop_id: int, *, level2_bp: int, level3_bp: int) -> Workshop:
    """The workshop's bonus for levels 2 and 3, in basis points (admins). Raises
    NotFound."""
    workshop = get_workshop(session, workshop_id)
    workshop.level2_bonus_bp = level2_bp
    workshop.level3_bonus_bp = level3_bp
    return workshop


def skill_changes(session: DbSession, workshop_id: int) -> list[SkillChange]:
    return list(
        session.scalars(
            select(SkillChange)
            .where(SkillChange.workshop_id == workshop_id)
            .order_by(SkillChange.id.desc())
        )
    )


def record_training(
    session: DbSession,
    workshop_id: int,
    *,
    title: str,
    held_on: date,
    attendee_ids: list[int],
    by: Principal,
) -> Training:
    """A training held at the workshop, attended by some of its members. Raises
    NotFound, Forbidden, ValidationFailed (an attendee who is not a member)."""
    check_admin_or_lead(session, workshop_id, by)
    attendees = sorted(set(attendee_ids))
    members = set(
        session.scalars(
            select(WorkshopMember.user_id).where(
                WorkshopMember.workshop_id == workshop_id,
                WorkshopMember.user_id.in_(attendees),
            )
        )
    )
    strangers = [user_id for user_id in attendees if user_id not in members]
    if strangers:
        raise ValidationFailed(
            _l(
                "Users %(strangers)s are not members of workshop %(workshop_id)s.",
                strangers=strangers,
                workshop_id=workshop_id,
            ),
            {"attendee_ids": [gettext("Not members: %(strangers)s.", strangers=strangers)]},
        )
    training = Training(
        workshop_id=workshop_id,
        title=title,
        held_on=held_on,
        created_by=by.id,
        attendees=[TrainingAttendee(user_id=user_id) for user_id in attendees],
    )
    session.add(training)
    session.flush()  # the caller shows the id
    return training


def trainings(session: DbSession, workshop_id: int, days: DayRange | None = None) -> list[Training]:
    stmt = select(Training).where(Training.workshop_id == workshop_id)
    if days is not None:
        stmt = stmt.where(Training.held_on >= days.first, Training.held_on <= days.last)
    return list(session.scalars(stmt.order_by(Training.held_on, Training.id)))


def training_json(training: Training) -> dict[str, Any]:
    return {
        "id": training.id,
        "workshop_id": training.workshop_id,
        "title": training.title,
        "held_on": training.held_on,
        "attendee_ids": [a.user_id for a in training.attendees],
    }


def wages_by_level(session: DbSession, workshop_id: int, days: DayRange) -> list[dict[str, Any]]:
    """The ledger's tasks of the range by the level they were claimed at (``null``: paid
    before levels existed): workers, tasks, base, bonus and wages."""
    rows = session.execute(
        select(
            EarningEntry.level,
            func.count(func.distinct(EarningEntry.user_id)),
            func.count(EarningEntry.id),
            func.sum(EarningEntry.base_fen),
            func.sum(EarningEntry.bonus_fen),
        )
        .where(
            EarningEntry.workshop_id == workshop_id,
            EarningEntry.task_id.is_not(None),
            EarningEntry.earned_at >= days.start,
            EarningEntry.earned_at < days.end,
        )
        .group_by(EarningEntry.level)
    ).all()
    levels = [
        {
            "level": level,
            "workers": int(workers),
            "tasks": int(tasks),
            "base_fen": int(base),
            "bonus_fen": int(bonus),
            "wages_fen": int(base) + int(bonus),
        }
        for level, workers, tasks, base, bonus in rows
    ]
    return sorted(levels, key=lambda row: (row["level"] is None, row["level"] or 0))


def member_skills(member: WorkshopMember) -> dict[str, int]:
    return {TaskKind.PARCEL.value: member.parcel_level, TaskKind.BATCH.value: member.batch_level}


def check_member(session: DbSession, workshop_id: int, user: Principal) -> None:
    """Raises NotAMember unless ``user`` is an admin or works at the workshop."""
    if user.has_role(Role.ADMIN) or membership(session, workshop_id, user.id) is not None:
        return
    raise NotAMember(
        _l("You are not a member of workshop %(workshop_id)s.", workshop_id=workshop_id)
    )
