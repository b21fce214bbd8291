"""The impact report: JSON and CSV (the console page is in ``fulfillment.pages``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app

from fulfillment import clock, impact
from fulfillment.schemas import ImpactOut, YearQuery
from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import requires
from shop.db import db

blp = Blueprint(
    "impact", __name__, url_prefix="/api/v1", description="What the workshops paid their people"
)


def report_for(year: int | None) -> dict[str, Any]:
    tz = current_app.config["SHOP_TIMEZONE"]
    if year is None:
        year = clock.now().astimezone(ZoneInfo(tz)).year
    return impact.impact_report(db.session, year, tz)


@blp.route("/reports/impact", methods=["GET"])
@requires(Role.ADMIN)
@blp.arguments(YearQuery, location="query")
@blp.response(200, ImpactOut)
def impact_report(query: dict[str, Any]) -> Any:
    """Per workshop, county-wide and for the workshops serving disabled workers, for a
    year (default this one): workers, parcels and pieces, wages paid, the median monthly
    wage per worker, how many workers were paid each month (admin)."""
    return report_for(query["year"])


@blp.route("/reports/impact.csv", methods=["GET"])
@requires(Role.ADMIN)
@blp.arguments(YearQuery, location="query")
@blp.response(200, content_type="text/csv", description="The impact report as CSV.")
def impact_report_csv(query: dict[str, Any]) -> Any:
    """The impact report as CSV: a row per workshop, then the totals (admin)."""
    report = report_for(query["year"])
    return Response(
        impact.impact_csv(report),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="impact-{report["year"]}.csv"',
            "Cache-Control": "private, no-store",
        },
    )
