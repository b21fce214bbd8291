"""Skill tiers, leads, the workshop's bonuses and trainings: the endpoints."""

from __future__ import annotations

from typing import Any

from fulfillment import service, skills
from fulfillment.api import member_json, workshop_json
from fulfillment.schemas import (
    LeadIn,
    MemberOut,
    SkillBonusIn,
    SkillChangeList,
    SkillIn,
    TrainingIn,
    TrainingList,
    TrainingOut,
    WorkshopOut,
    WorkshopPatchIn,
)
from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, requires
from shop.db import db

blp = Blueprint(
    "skills",
    __name__,
    url_prefix="/api/v1",
    description="Skill levels, the workshop's bonus per level, leads and trainings",
)


@blp.route("/workshops/<int:workshop_id>", methods=["PATCH"])
@requires(Role.ADMIN)
@blp.arguments(WorkshopPatchIn)
@blp.response(200, WorkshopOut)
@blp.alt_response(404, response="NOT_FOUND")
def update_workshop(data: dict[str, Any], workshop_id: int) -> Any:
    """Mark a workshop as serving disabled workers (the impact report counts these)."""
    workshop = service.get_workshop(db.session, workshop_id)
    if "serves_disabled" in data:
        workshop.serves_disabled = data["serves_disabled"]
    db.session.commit()
    return workshop_json(workshop)


@blp.route("/workshops/<int:workshop_id>/members/<int:user_id>", methods=["PATCH"])
@requires(Role.ADMIN)
@blp.arguments(LeadIn)
@blp.response(200, MemberOut)
@blp.alt_response(404, response="NOT_FOUND")
def set_lead(data: dict[str, Any], workshop_id: int, user_id: int) -> Any:
    """Name a member the workshop's lead, or no longer (admin)."""
    member = skills.set_lead(db.session, workshop_id, user_id, lead=data["lead"])
    db.session.commit()
    return member_json(member)


@blp.route("/workshops/<int:workshop_id>/members/<int:user_id>/skills", methods=["PUT"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.arguments(SkillIn)
@blp.response(200, MemberOut)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def set_skill(data: dict[str, Any], workshop_id: int, user_id: int) -> Any:
    """Set a member's level (1–3) for a task kind, with the reason (admin; the
    workshop's lead, not for themselves). Tasks already claimed keep their rate."""
    member = skills.set_level(
        db.session,
        workshop_id,
        user_id,
        kind=data["kind"],
        level=data["level"],
        reason=data["reason"],
        by=current_user(),
    )
    db.session.commit()
    return member_json(member)


@blp.route("/workshops/<int:workshop_id>/skill-changes", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, SkillChangeList)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def skill_changes(workshop_id: int) -> Any:
    """Every level change at the workshop, newest first: who, why (admin; the lead)."""
    skills.check_admin_or_lead(db.session, workshop_id, current_user())
    return {
        "items": [
            {
                "id": c.id,
                "user_id": c.user_id,
                "kind": c.kind,
                "from_level": c.from_level,
                "to_level": c.to_level,
                "reason": c.reason,
                "changed_by": c.changed_by,
                "changed_at": c.changed_at,
            }
            for c in skills.skill_changes(db.session, workshop_id)
        ]
    }


@blp.route("/workshops/<int:workshop_id>/skill-bonus", methods=["PUT"])
@requires(Role.ADMIN)
@blp.arguments(SkillBonusIn)
@blp.response(200, WorkshopOut)
@blp.alt_response(404, response="NOT_FOUND")
def set_skill_bonus(data: dict[str, Any], workshop_id: int) -> Any:
    """The workshop's bonus for levels 2 and 3, in basis points (admin: it is a wage).
    A task's rate is fixed at claim: base × (10000 + bonus_bp) / 10000, half up."""
    workshop = skills.set_bonus(
        db.session,
        workshop_id,
        level2_bp=data["level2_bonus_bp"],
        level3_bp=data["level3_bonus_bp"],
    )
    db.session.commit()
    return workshop_json(workshop)


@blp.route("/workshops/<int:workshop_id>/trainings", methods=["POST"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.arguments(TrainingIn)
@blp.response(201, TrainingOut)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="an attendee is no member")
def record_training(data: dict[str, Any], workshop_id: int) -> Any:
    """Record a training held at the workshop (admin; the workshop's lead)."""
    training = skills.record_training(db.session, workshop_id, **data, by=current_user())
    body = skills.training_json(training)
    db.session.commit()
    return body


@blp.route("/workshops/<int:workshop_id>/trainings", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, TrainingList)
@blp.alt_response(404, response="NOT_FOUND")
def list_trainings(workshop_id: int) -> Any:
    """The trainings held at the workshop (admin, members)."""
    service.check_can_see_workshop(db.session, workshop_id, current_user())
    return {"items": [skills.training_json(t) for t in skills.trainings(db.session, workshop_id)]}
