"""Fulfillment endpoints: workshops and members, the packing queue, earnings, reports,
packing slips."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from fulfillment import claims, clock, earnings, hot_path, service, skills
from fulfillment.models import PackingTask, Workshop, WorkshopMember
from fulfillment.schemas import (
    AllWorkshopsReportOut,
    CompleteIn,
    EarningsOut,
    MemberIn,
    MemberList,
    MemberOut,
    RangeQuery,
    TaskOut,
    TaskPage,
    TaskQuery,
    WorkshopIn,
    WorkshopList,
    WorkshopOut,
    WorkshopReportOut,
)
from fulfillment.slips import task_slip_png
from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, requires
from shop.db import db
from shop.pagination import paginate

blp = Blueprint(
    "fulfillment",
    __name__,
    url_prefix="/api/v1",
    description="Workshops, the packing queue, piece-rate earnings",
)


def workshop_json(workshop: Workshop) -> dict[str, Any]:
    return {
        "id": workshop.id,
        "name": workshop.name,
        "village": workshop.village,
        "active": workshop.active,
        "serves_disabled": workshop.serves_disabled,
        "skill_bonus_bp": {
            "1": 0,
            "2": workshop.level2_bonus_bp,
            "3": workshop.level3_bonus_bp,
        },
    }


def member_json(member: WorkshopMember) -> dict[str, Any]:
    return {
        "workshop_id": member.workshop_id,
        "user_id": member.user_id,
        "lead": member.lead,
        "joined_at": member.joined_at,
        "skills": skills.member_skills(member),
    }


def task_json(
    task: Any,
    lots: list[dict[str, Any]] | None = None,
    lines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A task (a PackingTask, or a row of its columns from ``hot_path``); ``lots`` (the
    lots a packed parcel drew from) when the caller has them; ``lines`` when the task
    does not load its own (a row)."""
    return {
        "id": task.id,
        "kind": task.kind,
        "order_id": task.order_id,
        "work_order_id": task.work_order_id,
        "pieces": task.pieces,
        "pieces_done": task.pieces_done,
        "due_at": task.due_at,
        "level": task.level,
        "bonus_bp": task.bonus_bp,
        "bonus_fen": task.bonus_fen,
        "trace_code": task.trace_code,
        "lots": lots or [],
        "workshop_id": task.workshop_id,
        "state": task.state,
        "claimed_by": task.claimed_by,
        "claimed_at": task.claimed_at,
        "lease_expires_at": task.lease_expires_at,
        "piece_rate_fen": task.piece_rate_fen,
        "expected_weight_g": task.expected_weight_g,
        "packed_by": task.packed_by,
        "packed_at": task.packed_at,
        "packed_weight_g": task.packed_weight_g,
        "needs_review": task.needs_review,
        "lease_extended": task.lease_extended,
        "created_at": task.created_at,
        "lines": [
            {
                "product_id": line.product_id,
                "name": line.name,
                "unit_label": line.unit_label,
                "qty": line.qty,
                "unit_weight_g": line.unit_weight_g,
                "packing_rate_fen": line.packing_rate_fen,
            }
            for line in task.lines
        ]
        if lines is None
        else lines,
    }


def report_days(query: dict[str, Any]) -> earnings.DayRange:
    return earnings.DayRange.parse(
        query.get("from_"), query.get("to"), current_app.config["SHOP_TIMEZONE"], clock.now()
    )


# ---------------------------------------------------------------- workshops


@blp.route("/workshops", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(WorkshopIn)
@blp.response(201, WorkshopOut)
def create_workshop(data: dict[str, Any]) -> Any:
    """Open a workshop."""
    workshop = service.create_workshop(
        db.session,
        name=data["name"],
        village=data["village"],
        serves_disabled=data["serves_disabled"],
    )
    db.session.commit()
    return workshop_json(workshop)


@blp.route("/workshops", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, WorkshopList)
def list_workshops() -> Any:
    """Every workshop (admin), or the ones the calling villager works at."""
    user = current_user()
    member_id = None if user.has_role(Role.ADMIN) else user.id
    return {
        "items": [workshop_json(w) for w in service.list_workshops(db.session, member_id=member_id)]
    }


@blp.route("/workshops/<int:workshop_id>/deactivate", methods=["POST"])
@requires(Role.ADMIN)
@blp.response(200, WorkshopOut)
@blp.alt_response(404, response="NOT_FOUND")
def deactivate_workshop(workshop_id: int) -> Any:
    """Close a workshop; its queued tasks move to the other active workshops."""
    workshop = service.deactivate_workshop(db.session, workshop_id)
    db.session.commit()
    return workshop_json(workshop)


@blp.route("/workshops/<int:workshop_id>/activate", methods=["POST"])
@requires(Role.ADMIN)
@blp.response(200, WorkshopOut)
@blp.alt_response(404, response="NOT_FOUND")
def activate_workshop(workshop_id: int) -> Any:
    """Reopen a workshop; tasks waiting for any workshop come to it."""
    workshop = service.activate_workshop(db.session, workshop_id)
    db.session.commit()
    return workshop_json(workshop)


@blp.route("/workshops/<int:workshop_id>/members", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(MemberIn)
@blp.response(201, MemberOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="conflict: already a member")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="the user is not a villager")
def add_member(data: dict[str, Any], workshop_id: int) -> Any:
    """Add a villager to a workshop."""
    member = service.add_member(db.session, workshop_id, user_id=data["user_id"], lead=data["lead"])
    db.session.commit()
    return member_json(member)


@blp.route("/workshops/<int:workshop_id>/members", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, MemberList)
@blp.alt_response(404, response="NOT_FOUND")
def list_members(workshop_id: int) -> Any:
    """The workshop's villagers (admin, members)."""
    service.check_can_see_workshop(db.session, workshop_id, current_user())
    return {"items": [member_json(m) for m in service.list_members(db.session, workshop_id)]}


# ---------------------------------------------------------------- the packing queue


@blp.route("/workshops/<int:workshop_id>/tasks", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.arguments(TaskQuery, location="query")
@blp.response(200, TaskPage)
@blp.alt_response(404, response="NOT_FOUND")
def list_tasks(query: dict[str, Any], workshop_id: int) -> Any:
    """The workshop's packing tasks, oldest first (admin, members)."""
    service.check_can_see_workshop(db.session, workshop_id, current_user())
    stmt = service.list_tasks(db.session, workshop_id, state=query["state"])
    page = paginate(db.session, stmt, PackingTask.id, limit=query["limit"], cursor=query["cursor"])
    lots = service.task_lots(db.session, [t.id for t in page["items"] if t.state == "packed"])
    return {**page, "items": [task_json(t, lots.get(t.id)) for t in page["items"]]}


@blp.route("/workshops/<int:workshop_id>/tasks/claim", methods=["POST"])
@requires(Role.VILLAGER)
@blp.response(200, TaskOut)
@blp.alt_response(204, description="The queue is empty.")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(
    409, response="CONFLICT", description="conflict: you already hold a task, or it is closed"
)
def claim_task(workshop_id: int) -> Any:
    """Claim the workshop's queued task due first, parcel or batch; a parcel past its due
    time goes before every batch (member villagers). The claim lasts ``CLAIM_LEASE_S``
    and fixes the claimer's level and bonus on the task; a parcel's order moves to
    ``packing``."""
    config = current_app.config
    args = {
        "user_id": current_user().id,
        "now": clock.now(),
        "lease_s": config["CLAIM_LEASE_S"],
        "max_claims": config["MAX_CLAIMS_PER_VILLAGER"],
    }
    taken = (
        hot_path.claim(db.session, workshop_id, **args)
        if hot_path.is_available(db.session)
        else hot_path.GENERAL_WAY
    )
    if isinstance(taken, hot_path.Outcome):
        # expires leases, skips unpaid orders, says why not
        task = claims.claim_next(db.session, workshop_id, **args)
        body = None if task is None else task_json(task)
    else:
        body = None if taken is None else task_json(taken, lines=taken.lines or [])
    db.session.commit()  # expired leases returned to the queue stay returned
    return Response(status=204) if body is None else body


@blp.route("/packing-tasks/<int:task_id>", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, TaskOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_task(task_id: int) -> Any:
    """One packing task (admin, its workshop's villagers, its claimer)."""
    task = service.get_task(db.session, task_id)
    service.check_can_see_task(db.session, task, current_user())
    return task_json(task, service.task_lots(db.session, [task.id]).get(task.id))


@blp.route("/packing-tasks/<int:task_id>/complete", methods=["POST"])
@requires(Role.VILLAGER)
@blp.arguments(CompleteIn)
@blp.response(200, TaskOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(
    409, response="CONFLICT", description="conflict: not claimed, or the lease expired"
)
def complete_task(data: dict[str, Any], task_id: int) -> Any:
    """The claimer finished it: task ``packed`` and its pay earned. A parcel: order
    ``packed`` with its ``trace_code``, the lots it drew from recorded. A batch:
    ``pieces_done`` (default all) paid pro rata, the rest left on the work order."""
    args = {
        "user_id": current_user().id,
        "now": clock.now(),
        "packed_weight_g": data["packed_weight_g"],
        "tolerance_bp": current_app.config["PACK_WEIGHT_TOLERANCE_BP"],
    }
    done = (
        hot_path.complete_parcel(db.session, task_id, **args)
        if data["pieces_done"] is None and hot_path.is_available(db.session)
        else hot_path.GENERAL_WAY
    )
    if isinstance(done, hot_path.Outcome):
        # a batch, or a refusal: says why not
        task = claims.complete(db.session, task_id, **args, pieces_done=data["pieces_done"])
        lots = service.task_lots(db.session, [task.id]) if task.kind == "parcel" else {}
        body = task_json(task, lots.get(task.id))
    else:
        body = task_json(done, lots=done.lots or [], lines=done.lines or [])
    db.session.commit()
    return body


@blp.route("/packing-tasks/<int:task_id>/release", methods=["POST"])
@requires(Role.VILLAGER)
@blp.response(200, TaskOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(
    409, response="CONFLICT", description="conflict: not claimed, or the lease expired"
)
def release_task(task_id: int) -> Any:
    """The claimer gives the task back to the queue; the order goes back to ``paid``."""
    task = claims.release(db.session, task_id, user_id=current_user().id, now=clock.now())
    body = task_json(task)
    db.session.commit()
    return body


@blp.route("/packing-tasks/<int:task_id>/extend", methods=["POST"])
@requires(Role.VILLAGER)
@blp.response(200, TaskOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(
    409,
    response="CONFLICT",
    description="conflict: already renewed once in this claim, the lease ran out, or not claimed",
)
def extend_task(task_id: int) -> Any:
    """The claimer keeps the task: the lease runs ``CLAIM_LEASE_S`` from now. Once per claim."""
    task = claims.extend(
        db.session,
        task_id,
        user_id=current_user().id,
        now=clock.now(),
        lease_s=current_app.config["CLAIM_LEASE_S"],
    )
    body = task_json(task)
    db.session.commit()
    return body


@blp.route("/packing-tasks/<int:task_id>/slip.png", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.response(200, content_type="image/png", description="The packing slip, a PNG label.")
@blp.alt_response(404, response="NOT_FOUND")
def packing_slip(task_id: int) -> Any:
    """The task's packing slip to print and put in the parcel (admin, the workshop's
    villagers, the claimer): order number and QR code, recipient, region, lines."""
    task = service.get_task(db.session, task_id)
    service.check_can_see_task(db.session, task, current_user())
    png = task_slip_png(
        db.session,
        task,
        font_path=current_app.config.get("SLIP_FONT_PATH"),
        base_url=current_app.config["PUBLIC_BASE_URL"],
    )
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})


# ---------------------------------------------------------------- earnings and reports


@blp.route("/villagers/me/earnings", methods=["GET"])
@requires(Role.VILLAGER)
@blp.arguments(RangeQuery, location="query")
@blp.response(200, EarningsOut)
def my_earnings(query: dict[str, Any]) -> Any:
    """The calling villager's piece-rate earnings by business day (``SHOP_TIMEZONE``);
    by default the last 30 days."""
    return earnings.villager_earnings(db.session, current_user().id, report_days(query))


@blp.route("/workshops/<int:workshop_id>/report", methods=["GET"])
@requires(Role.ADMIN, Role.VILLAGER)
@blp.arguments(RangeQuery, location="query")
@blp.response(200, WorkshopReportOut)
@blp.alt_response(404, response="NOT_FOUND")
def workshop_report(query: dict[str, Any], workshop_id: int) -> Any:
    """Tasks packed, wages, workers, median paid → packed, wages by skill level and the
    trainings held (admin; the workshop's lead)."""
    service.check_can_see_report(db.session, workshop_id, current_user())
    days = report_days(query)
    return {
        **earnings.workshop_report(db.session, workshop_id, days),
        "wages_by_level": skills.wages_by_level(db.session, workshop_id, days),
        "trainings": [
            skills.training_json(t) for t in skills.trainings(db.session, workshop_id, days)
        ],
    }


@blp.route("/workshops/report", methods=["GET"])
@requires(Role.ADMIN)
@blp.arguments(RangeQuery, location="query")
@blp.response(200, AllWorkshopsReportOut)
def all_workshops_report(query: dict[str, Any]) -> Any:
    """The workshop report for every workshop, with totals (admin)."""
    return earnings.all_workshops_report(db.session, report_days(query))
