"""Workshops in the console: create, close and reopen; members (add or remove villagers,
mark the lead); each workshop's queue and monthly report, with a CSV download."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for

from console.base import admin_page, bp, load, refuse
from fulfillment import board
from fulfillment import service as fulfillment
from fulfillment.lead_pages import report_context, report_csv_response
from fulfillment.schemas import WorkshopIn
from shop.accounts import service as accounts
from shop.accounts.models import Role
from shop.db import db
from shop.errors import DomainError, ValidationFailed
from shop.i18n import N_, _l
from shop.web import flash_message
from shop.web.format import parse_whole


@bp.route("/admin/workshops", methods=["GET"])
@admin_page
def workshops() -> Any:
    """Every workshop with its queue, and the form for a new one."""
    return render_template(
        "console/workshops.html",
        workshops=fulfillment.list_workshops(db.session),
        depths=board.queue_depths(db.session),
    )


@bp.route("/admin/workshops", methods=["POST"])
@admin_page
def workshops_create() -> Any:
    try:
        data = load(WorkshopIn(), {k: request.form.get(k, "") for k in ("name", "village")})
        workshop = fulfillment.create_workshop(db.session, **data)
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".workshops"))
    db.session.commit()
    flash_message("workshop_created", id=workshop.id)
    return redirect(url_for(".workshop", workshop_id=workshop.id))


@bp.route("/admin/workshops/<int:workshop_id>", methods=["GET"])
@admin_page
def workshop(workshop_id: int) -> Any:
    """One workshop: queue, members, the month's report."""
    context = report_context(fulfillment.get_workshop(db.session, workshop_id))
    member_ids = {user.id for _, user in context["members"]}
    villagers = [
        user
        for user in accounts.list_users(db.session, role=Role.VILLAGER.value, limit=1000)
        if user.id not in member_ids and user.active
    ]
    return render_template("console/workshop.html", villagers=villagers, **context)


@bp.route("/admin/workshops/<int:workshop_id>/report.csv", methods=["GET"])
@admin_page
def workshop_report_csv(workshop_id: int) -> Any:
    return report_csv_response(fulfillment.get_workshop(db.session, workshop_id))


@bp.route("/admin/workshops/<int:workshop_id>/deactivate", methods=["POST"])
@admin_page
def workshop_deactivate(workshop_id: int) -> Any:
    fulfillment.deactivate_workshop(db.session, workshop_id)
    db.session.commit()
    flash_message("workshop_deactivated")
    return redirect(url_for(".workshop", workshop_id=workshop_id))


@bp.route("/admin/workshops/<int:workshop_id>/activate", methods=["POST"])
@admin_page
def workshop_activate(workshop_id: int) -> Any:
    fulfillment.activate_workshop(db.session, workshop_id)
    db.session.commit()
    flash_message("workshop_activated")
    return redirect(url_for(".workshop", workshop_id=workshop_id))


def _user_id(raw: str | None) -> int:
    user_id = parse_whole(raw)
    if user_id is None or not 0 < user_id <= 2**31 - 1:
        raise ValidationFailed(_l("Choose a villager."), {"user_id": [N_("Choose a villager.")]})
    return user_id


@bp.route("/admin/workshops/<int:workshop_id>/members", methods=["POST"])
@admin_page
def workshop_add_member(workshop_id: int) -> Any:
    try:
        fulfillment.add_member(
            db.session,
            workshop_id,
            user_id=_user_id(request.form.get("user_id")),
            lead=request.form.get("lead") == "1",
        )
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".workshop", workshop_id=workshop_id))
    db.session.commit()
    flash_message("member_added")
    return redirect(url_for(".workshop", workshop_id=workshop_id))


@bp.route("/admin/workshops/<int:workshop_id>/members/<int:user_id>/remove", methods=["POST"])
@admin_page
def workshop_remove_member(workshop_id: int, user_id: int) -> Any:
    try:
        fulfillment.remove_member(db.session, workshop_id, user_id)
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".workshop", workshop_id=workshop_id))
    db.session.commit()
    flash_message("member_removed")
    return redirect(url_for(".workshop", workshop_id=workshop_id))


@bp.route("/admin/workshops/<int:workshop_id>/members/<int:user_id>/lead", methods=["POST"])
@admin_page
def workshop_set_lead(workshop_id: int, user_id: int) -> Any:
    try:
        fulfillment.set_lead(db.session, workshop_id, user_id, lead=request.form.get("lead") == "1")
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".workshop", workshop_id=workshop_id))
    db.session.commit()
    flash_message("lead_changed")
    return redirect(url_for(".workshop", workshop_id=workshop_id))
