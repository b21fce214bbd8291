"""Today at a glance (``/admin``): what is live, orders by state, each workshop's packing
queue, payouts not yet paid, and the domain events that kept failing (with a retry)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, url_for

from console.base import admin_page, bp, refuse
from contracts import reads as contract_reads
from fulfillment import board
from fulfillment import service as fulfillment
from shop.core import events
from shop.db import db
from shop.errors import DomainError
from shop.live import service as live
from shop.orders import reads as order_reads
from shop.web import flash_message


@bp.route("/admin", methods=["GET"])
@admin_page
def overview() -> Any:
    """Today at a glance."""
    return render_template(
        "console/overview.html",
        live_sessions=live.live_now(db.session),
        orders=order_reads.orders_by_state(db.session),
        workshops=fulfillment.list_workshops(db.session),
        depths=board.queue_depths(db.session),
        payouts=contract_reads.payout_counts(db.session),
        dead=events.dead_events(db.session, limit=50),
        outbox=events.outbox_counts(db.session),
    )


@bp.route("/admin/events/<int:event_id>/retry", methods=["POST"])
@admin_page
def retry_event(event_id: int) -> Any:
    """Give a dead event another round of attempts."""
    try:
        events.retry_dead(db.session, event_id)
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".overview"))
    db.session.commit()
    flash_message("event_retried", id=event_id)
    return redirect(url_for(".overview"))
