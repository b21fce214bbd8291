"""The workshop lead's page (``/workshop/lead``): their own workshop's queue, members and
monthly report (with a CSV download) — and nothing of any other workshop.

The rule of who sees a report is ``service.check_can_see_report`` (admins, the workshop's
lead), the same one the API applies.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, render_template, request

from fulfillment import board, clock, earnings, service
from fulfillment.models import Workshop
from shop.accounts.models import Role
from shop.db import db
from shop.errors import Forbidden
from shop.i18n import _l
from shop.web import page_blueprint
from shop.web.auth import login_required, page_user
from shop.web.format import parse_whole

bp = page_blueprint("lead_pages", __name__)


def report_context(workshop: Workshop) -> dict[str, Any]:
    """The queue, members and the chosen month's report of a workshop (``?month=``)."""
    days = board.month_range(
        request.args.get("month"), current_app.config["SHOP_TIMEZONE"], clock.now()
    )
    report = earnings.workshop_report(db.session, workshop.id, days)
    queue = board.queue_tasks(db.session, workshop.id)
    members = board.members_with_users(db.session, workshop.id)
    names = {user.id: user.display_name for _, user in members}
    names |= board.user_names(
        db.session,
        {w["user_id"] for w in report["workers"]} | {t.claimed_by for t in queue if t.claimed_by},
    )
    return {
        "workshop": workshop,
        "depth": board.queue_depths(db.session, [workshop.id]).get(workshop.id),
        "queue": queue,
        "members": members,
        "report": report,
        "month": f"{days.first:%Y-%m}",
        "names": names,
    }


def report_csv_response(workshop: Workshop) -> Response:
    context = report_context(workshop)
    body = board.report_csv(context["report"], context["names"])
    filename = f"workshop-{workshop.id}-{context['month']}.csv"
    return Response(
        "\ufeff" + body,  # a BOM, so spreadsheet programs read the Chinese names as UTF-8
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _led_workshop() -> Workshop:
    """The workshop asked for (``?workshop=``, default the first one led), if the
    signed-in villager leads it. Raises Forbidden, NotAMember."""
    led = service.led_workshops(db.session, page_user().id)
    if not led:
        raise Forbidden(_l("Only a workshop's lead sees this page."))
    asked = request.args.get("workshop")
    if asked is None:
        return led[0]
    workshop_id = parse_whole(asked)
    if workshop_id is None or workshop_id > 2**31 - 1:
        raise Forbidden(_l("Only a workshop's lead sees this page."))
    return service.check_can_see_report(db.session, workshop_id, page_user())


@bp.route("/workshop/lead", methods=["GET"])
@login_required(Role.VILLAGER)
def lead() -> Any:
    """The lead's own workshop: queue, members, the month's report."""
    workshop = _led_workshop()
    return render_template(
        "fulfillment/lead.html",
        led=service.led_workshops(db.session, page_user().id),
        **report_context(workshop),
    )


@bp.route("/workshop/lead/report.csv", methods=["GET"])
@login_required(Role.VILLAGER)
def lead_report_csv() -> Any:
    """The month's report of the lead's workshop as CSV."""
    return report_csv_response(_led_workshop())
