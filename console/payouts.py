"""Payouts in the console: run them through a date, see each payout's items and state,
send a failed one again. The run and the sending are those of ``POST /payouts/run``:
the run commits, then each payout is sent by the ``contracts.send_payout`` task."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from console.base import admin_page, bp, load, refuse
from contracts import reads
from contracts.errors import PayoutProviderUnavailable
from contracts.models import Payout, PayoutState
from contracts.payouts import service as payout_service
from contracts.payouts.providers import payout_provider
from contracts.schemas import PayoutRunIn
from contracts.tasks import send_payout, sending_lease
from shop.db import db, utcnow
from shop.errors import Conflict, DomainError, NotFound
from shop.i18n import _l
from shop.web import flash_message


def _today() -> date:
    return datetime.now(ZoneInfo(current_app.config["SHOP_TIMEZONE"])).date()


@bp.route("/admin/payouts", methods=["GET"])
@admin_page
def payouts() -> Any:
    """The latest payouts with what each pays, and the form to run a new round."""
    recent = reads.recent_payouts(db.session)
    lines = payout_service.payout_lines(db.session, [p.id for p in recent])
    return render_template(
        "console/payouts.html",
        payouts=recent,
        lines=lines,
        farmers={f.id: f.display_name for f in reads.farmers(db.session)},
        names=reads.product_names(db.session),
        today=_today(),
    )


def _check_provider() -> None:
    try:
        payout_provider(current_app.config)
    except RuntimeError as error:  # production without a Stripe key: nothing may be "paid"
        raise PayoutProviderUnavailable(str(error)) from None


@bp.route("/admin/payouts/run", methods=["POST"])
@admin_page
def payouts_run() -> Any:
    try:
        _check_provider()
        data = load(PayoutRunIn(), {"through": request.form.get("through", "")})
        run = payout_service.run_payouts(
            db.session, through=data["through"], now=utcnow(), sending_lease=sending_lease()
        )
        to_send = list(run.to_send)
        count = len(run.payouts)
        db.session.commit()
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".payouts"))
    except IntegrityError:
        refuse(Conflict("Another payout run included these items first; run again."))
        return redirect(url_for(".payouts"))
    # Sent only now that the run has committed: a task must find the payout it is given.
    for payout_id in to_send:
        send_payout.delay(payout_id)
    flash_message("run_done", n=count)
    return redirect(url_for(".payouts"))


@bp.route("/admin/payouts/<int:payout_id>/retry", methods=["POST"])
@admin_page
def payouts_retry(payout_id: int) -> Any:
    """Send a failed payout again now (same idempotency key: it cannot pay twice)."""
    payout = db.session.get(Payout, payout_id)
    try:
        if payout is None:
            raise NotFound(_l("No payout %(payout_id)s.", payout_id=payout_id))
        if payout.state != PayoutState.FAILED.value:
            raise Conflict(
                _l(
                    "Payout %(payout_id)s is %(state)s; only a failed one is retried.",
                    payout_id=payout_id,
                    state=payout.state,
                )
            )
        _check_provider()
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".payouts"))
    db.session.rollback()  # end this request's read before the task claims the payout
    send_payout.delay(payout_id)
    db.session.expire_all()
    payout = db.session.get(Payout, payout_id)
    state = payout.state if payout else "?"
    flash_message("payout_retried", id=payout_id, state=state)
    return redirect(url_for(".payouts"))
