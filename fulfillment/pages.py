"""The villager's task board (``/workshop``): claim the next parcel, see what is in it,
print its slip, mark it done or give it back, and see what today and this week paid.

Every action is a plain form POST (works without JavaScript) that calls the same
``claims`` functions as the API, then redirects back to the board.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from fulfillment import board, claims, clock, earnings, impact, service
from fulfillment.errors import (
    AlreadyClaiming,
    LeaseAlreadyExtended,
    LeaseExpired,
    NotAMember,
    NotTheClaimer,
    TaskNotClaimed,
    WorkshopInactive,
)
from fulfillment.models import EarningEntry
from fulfillment.slips import task_slip, task_slip_png
from media.slips import qr_matrix
from shop.accounts.models import Role
from shop.db import db
from shop.errors import Conflict, DomainError, NotFound, ValidationFailed
from shop.i18n import _l
from shop.orders import service as orders
from shop.web import flash_message, flash_refusal, page_blueprint
from shop.web.auth import login_required, page_user
from shop.web.format import local, parse_whole, yuan

bp = page_blueprint("workshop_pages", __name__)

#: the board warns this long before a claim's lease runs out
LEASE_WARNING_S = 300

#: what the villager reads when a rule says no: the rule's reason in plain words (most
#: specific class first: each is a subclass of Forbidden or Conflict)
REFUSALS: list[tuple[type[DomainError], str]] = [
    (NotTheClaimer, "refused_not_yours"),
    (LeaseExpired, "refused_expired"),
    (LeaseAlreadyExtended, "extended_once"),
    (TaskNotClaimed, "refused_not_claimed"),
    (AlreadyClaiming, "refused_already_claiming"),
    (NotAMember, "refused_not_member"),
    (WorkshopInactive, "refused_workshop_closed"),
    (NotFound, "refused_no_task"),
    (Conflict, "refused_changed"),
]


def _refuse(error: DomainError) -> None:
    key = next((key for kind, key in REFUSALS if isinstance(error, kind)), None)
    flash_refusal(error, key)


def _earnings(user_id: int) -> dict[str, Any]:
    """Today's and this week's (Monday on) piece-rate earnings, in the shop's time zone."""
    tz = ZoneInfo(current_app.config["SHOP_TIMEZONE"])
    today = clock.now().astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    return {
        "today": earnings.villager_earnings(
            db.session, user_id, earnings.DayRange(today, today, tz)
        ),
        "week": earnings.villager_earnings(
            db.session, user_id, earnings.DayRange(monday, today, tz)
        ),
    }


@bp.route("/workshop", methods=["GET"])
@login_required(Role.VILLAGER)
def workshop() -> Any:
    """The task board."""
    return _board()


def _board(weight_check: dict[str, Any] | None = None) -> Any:
    user = page_user()
    now = clock.now()
    held = claims.holding(db.session, user.id, now=now)
    tasks = [
        (task, orders.get_order(db.session, task.order_id) if task.order_id else None)
        for task in held
    ]
    workshops = [w for w in service.list_workshops(db.session, member_id=user.id) if w.active]
    depths = board.queue_depths(db.session, [w.id for w in workshops])
    tz = ZoneInfo(current_app.config["SHOP_TIMEZONE"])
    today = now.astimezone(tz).date()
    return render_template(
        "fulfillment/workshop.html",
        tasks=tasks,
        workshops=workshops,
        earned=_earnings(user.id),
        waiting=sum(d.queued for d in depths.values()),
        parcels=board.parcels_packed(db.session, user.id, earnings.DayRange(today, today, tz)),
        lease_left={
            task.id: max(0, int((task.lease_expires_at - now).total_seconds()))
            for task in held
            if task.lease_expires_at is not None
        },
        warning_s=LEASE_WARNING_S,
        weight_check=weight_check,
        is_lead=bool(service.led_workshops(db.session, user.id)),
    )


@bp.route("/workshop/claim", methods=["POST"])
@login_required(Role.VILLAGER)
def claim() -> Any:
    workshop_id = parse_whole(request.form.get("workshop_id"))
    if workshop_id is None or workshop_id > 2**31 - 1:
        flash_message("error_422", "error")
        return redirect(url_for(".workshop"))
    config = current_app.config
    try:
        task = claims.claim_next(
            db.session,
            workshop_id,
            user_id=page_user().id,
            now=clock.now(),
            lease_s=config["CLAIM_LEASE_S"],
            max_claims=config["MAX_CLAIMS_PER_VILLAGER"],
        )
    except DomainError as error:
        db.session.rollback()
        _refuse(error)
        return redirect(url_for(".workshop"))
    if task is None:
        flash_message("queue_empty")
    else:
        flash_message("claimed", id=task.id)
    db.session.commit()  # also keeps expired leases returned to the queue
    return redirect(url_for(".workshop"))


@bp.route("/workshop/tasks/<int:task_id>/complete", methods=["POST"])
@login_required(Role.VILLAGER)
def complete(task_id: int) -> Any:
    raw_weight = (request.form.get("packed_weight_g") or "").strip()
    weight = parse_whole(raw_weight) if raw_weight else None
    if raw_weight and (weight is None or weight > 2**31 - 1):
        flash_message("weight_invalid", "error")
        return redirect(url_for(".workshop"))
    raw_pieces = (request.form.get("pieces_done") or "").strip()
    pieces = parse_whole(raw_pieces) if raw_pieces else None
    if raw_pieces and (pieces is None or not 0 < pieces <= 2**31 - 1):
        flash_message("error_422", "error")
        return redirect(url_for(".workshop"))
    tolerance_bp = current_app.config["PACK_WEIGHT_TOLERANCE_BP"]
    if weight is not None and request.form.get("weight_confirmed") != "1":
        # A weight far off the expected one is usually a misread scale or a wrong item:
        # ask once before completing (the service still flags it for review if confirmed).
        held = claims.holding(db.session, page_user().id, now=clock.now())
        task = next((t for t in held if t.id == task_id), None)
        if task is not None and claims.weight_is_off(weight, task.expected_weight_g, tolerance_bp):
            check = {"task_id": task_id, "packed_g": weight, "expected_g": task.expected_weight_g}
            return _board(weight_check=check), 200
    try:
        task = claims.complete(
            db.session,
            task_id,
            user_id=page_user().id,
            now=clock.now(),
            packed_weight_g=weight,
            tolerance_bp=tolerance_bp,
            pieces_done=pieces,
        )
    except DomainError as error:
        db.session.rollback()
        _refuse(error)
        return redirect(url_for(".workshop"))
    paid = db.session.scalar(select(EarningEntry.amount_fen).where(EarningEntry.task_id == task.id))
    flash_message("completed", id=task.id, amount=yuan(paid or 0))
    db.session.commit()
    return redirect(url_for(".workshop"))


@bp.route("/workshop/tasks/<int:task_id>/release", methods=["POST"])
@login_required(Role.VILLAGER)
def release(task_id: int) -> Any:
    try:
        task = claims.release(db.session, task_id, user_id=page_user().id, now=clock.now())
    except DomainError as error:
        db.session.rollback()
        _refuse(error)
        return redirect(url_for(".workshop"))
    flash_message("released", id=task.id)
    db.session.commit()
    return redirect(url_for(".workshop"))


@bp.route("/workshop/tasks/<int:task_id>/slip.png", methods=["GET"])
@login_required(Role.VILLAGER, Role.ADMIN)
def slip(task_id: int) -> Any:
    """The packing slip PNG, for a signed-in page user who may see the task (the same rule
    and the same renderer as ``GET /api/v1/packing-tasks/{id}/slip.png``)."""
    task = service.get_task(db.session, task_id)
    service.check_can_see_task(db.session, task, page_user())
    png = task_slip_png(
        db.session,
        task,
        font_path=current_app.config.get("SLIP_FONT_PATH"),
        base_url=current_app.config["PUBLIC_BASE_URL"],
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})


@bp.route("/console/impact", methods=["GET"])
@login_required(Role.ADMIN)
def impact_page() -> Any:
    """The impact report on the console (admin): a table per workshop and the totals;
    the CSV is ``/api/v1/reports/impact.csv`` (and ``/console/impact.csv``)."""
    tz = ZoneInfo(current_app.config["SHOP_TIMEZONE"])
    year = parse_whole(request.args.get("year") or "") or clock.now().astimezone(tz).year
    if not 2000 <= year <= 2100:
        raise ValidationFailed(_l("Choose a year from 2000 to 2100."))
    report = impact.impact_report(db.session, year, current_app.config["SHOP_TIMEZONE"])
    return render_template("fulfillment/impact.html", report=report)


@bp.route("/console/impact.csv", methods=["GET"])
@login_required(Role.ADMIN)
def impact_csv_page() -> Any:
    """The impact report's CSV, for the console's download link."""
    tz = ZoneInfo(current_app.config["SHOP_TIMEZONE"])
    year = parse_whole(request.args.get("year") or "") or clock.now().astimezone(tz).year
    if not 2000 <= year <= 2100:
        raise ValidationFailed(_l("Choose a year from 2000 to 2100."))
    report = impact.impact_report(db.session, year, current_app.config["SHOP_TIMEZONE"])
    return Response(
        impact.impact_csv(report),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="impact-{year}.csv"'},
    )


@bp.route("/workshop/tasks/<int:task_id>/extend", methods=["POST"])
@login_required(Role.VILLAGER)
def extend(task_id: int) -> Any:
    """Keep the task: its lease runs ``CLAIM_LEASE_S`` again (once per claim)."""
    try:
        task = claims.extend(
            db.session,
            task_id,
            user_id=page_user().id,
            now=clock.now(),
            lease_s=current_app.config["CLAIM_LEASE_S"],
        )
    except DomainError as error:
        db.session.rollback()
        _refuse(error)
        return redirect(url_for(".workshop"))
    flash_message("extended", time=local(task.lease_expires_at, "%H:%M"))
    db.session.commit()
    return redirect(url_for(".workshop"))


@bp.route("/workshop/tasks/<int:task_id>/slip", methods=["GET"])
@login_required(Role.VILLAGER, Role.ADMIN)
def slip_page(task_id: int) -> Any:
    """The slip as a page to print on a 100 × 150 mm label: recipient, phone, address,
    region, lines, task and order numbers, workshop, the QR code of the PNG slip."""
    task = service.get_task(db.session, task_id)
    service.check_can_see_task(db.session, task, page_user())
    slip = task_slip(db.session, task, base_url=current_app.config["PUBLIC_BASE_URL"])
    assert task.order_id is not None  # task_slip refuses a batch
    return render_template(
        "fulfillment/slip.html",
        task=task,
        order=orders.get_order(db.session, task.order_id),
        slip=slip,
        qr=_qr_svg_path(slip.order_ref),
    )


def _qr_svg_path(order_ref: str) -> dict[str, Any]:
    """The slip's QR code (the same modules as the PNG's) as one SVG path: a unit square
    per dark module."""
    matrix = qr_matrix(order_ref)
    squares = (
        f"M{x} {y}h1v1h-1z" for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark
    )
    return {"size": len(matrix), "path": "".join(squares)}
