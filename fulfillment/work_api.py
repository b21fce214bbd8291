"""Partner firms and their work orders (来料加工): the endpoints."""

from __future__ import annotations

from typing import Any

from flask import current_app

from fulfillment import clock, skills, work_orders
from fulfillment.api import report_days
from fulfillment.models import Partner
from fulfillment.schemas import (
    PartnerIn,
    PartnerList,
    PartnerOut,
    RangeQuery,
    StatementOut,
    WorkOrderIn,
    WorkOrderOut,
)
from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, requires
from shop.db import db

blp = Blueprint(
    "work_orders",
    __name__,
    url_prefix="/api/v1",
    description="Partner firms, their work orders (来料加工) and statements",
)


def partner_json(partner: Partner) -> dict[str, Any]:
    return {"id": partner.id, "name": partner.name, "contact": partner.contact}


@blp.route("/partners", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(PartnerIn)
@blp.response(201, PartnerOut)
def create_partner(data: dict[str, Any]) -> Any:
    """Record a partner firm that sends piece work."""
    partner = work_orders.create_partner(db.session, name=data["name"], contact=data["contact"])
    db.session.commit()
    return partner_json(partner)


@blp.route("/partners", methods=["GET"])
@requires(Role.ADMIN)
@blp.response(200, PartnerList)
def list_partners() -> Any:
    """Every partner firm (admin)."""
    return {"items": [partner_json(p) for p in work_orders.list_partners(db.session)]}


@blp.route("/partners/<int:partner_id>/statement", methods=["GET"])
@requires(Role.ADMIN)
@blp.arguments(RangeQuery, location="query")
@blp.response(200, StatementOut)
@blp.alt_response(404, response="NOT_FOUND")
def partner_statement(query: dict[str, Any], partner_id: int) -> Any:
    """What the partner's work orders got done in the range (business days, both
    inclusive): pieces, what the partner owes, the wages paid out of it."""
    return work_orders.partner_statement(db.session, partner_id, report_days(query))


@blp.route("/work-orders", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(WorkOrderIn)
@blp.response(201, WorkOrderOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="conflict: the workshop is closed")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="validation")
def create_work_order(data: dict[str, Any]) -> Any:
    """Record a work order; its ⌈pieces / batch_pieces⌉ batches are queued at the
    workshop (``kind: "batch"``), due evenly up to the due date."""
    order = work_orders.create_work_order(
        db.session,
        **data,
        created_by=current_user().id,
        now=clock.now(),
        tz_name=current_app.config["SHOP_TIMEZONE"],
    )
    body = work_orders.progress(db.session, order)
    db.session.commit()
    return body


@blp.route("/work-orders/<int:work_order_id>", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, WorkOrderOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_work_order(work_order_id: int) -> Any:
    """A work order's progress: pieces and batches done, wages paid, what the partner
    owes (admin; the lead of its workshop)."""
    order = work_orders.get_work_order(db.session, work_order_id)
    skills.check_admin_or_lead(db.session, order.workshop_id, current_user())
    return work_orders.progress(db.session, order)
