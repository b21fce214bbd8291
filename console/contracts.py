"""Contracts in the console: each farmer's contracts with delivered weight against the
commitment, new drafts, termination — and the weighing station, which shows what a
delivery will pay (``contracts.service.quote_delivery``) before it is recorded."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, redirect, render_template, request, url_for

from console.base import admin_page, bp, load, refuse
from contracts import reads
from contracts import service as contract_service
from contracts.schemas import ContractIn, DeliveryIn, TerminateIn
from shop.db import db
from shop.errors import DomainError, ValidationFailed
from shop.i18n import N_, _l
from shop.web import flash_message
from shop.web.auth import page_user
from shop.web.format import parse_scaled, parse_whole, yuan


def _today() -> date:
    return datetime.now(ZoneInfo(current_app.config["SHOP_TIMEZONE"])).date()


def _whole(raw: str | None, field: str) -> int:
    value = parse_whole(raw)
    if value is None:
        raise ValidationFailed(
            _l("%(field)s: a whole number.", field=field), {field: [N_("A whole number.")]}
        )
    return value


@bp.route("/admin/contracts", methods=["GET"])
@admin_page
def contracts() -> Any:
    """Farmers with their contracts, and the form for a new draft."""
    return render_template(
        "console/contracts.html",
        farmers=reads.farmers(db.session),
        by_farmer=reads.contracts_by_farmer(db.session),
        names=reads.product_names(db.session),
        today=_today(),
    )


@bp.route("/admin/contracts/new", methods=["POST"])
@admin_page
def contracts_create() -> Any:
    form = request.form
    try:
        premium_bp = parse_scaled(form.get("premium_percent"), 2)
        if premium_bp is None:
            raise ValidationFailed(_l("premium: a percentage like 12 or 12.5."))
        data = load(
            ContractIn(),
            {
                "farmer_id": _whole(form.get("farmer_id"), "farmer_id"),
                "product_id": _whole(form.get("product_id"), "product_id"),
                "grade": (form.get("grade") or "").strip() or "standard",
                "premium_bp": premium_bp,
                "committed_kg": _whole(form.get("committed_kg"), "committed_kg"),
                "starts_on": form.get("starts_on", ""),
                "ends_on": form.get("ends_on", ""),
            },
        )
        contract = contract_service.create_contract(db.session, **data, created_by=page_user().id)
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".contracts"))
    db.session.commit()
    flash_message("contract_created", id=contract.id)
    return redirect(url_for(".contracts"))


@bp.route("/admin/contracts/<int:contract_id>/terminate", methods=["POST"])
@admin_page
def contracts_terminate(contract_id: int) -> Any:
    try:
        data = load(TerminateIn(), {"reason": request.form.get("reason", "")})
        contract_service.terminate_contract(db.session, contract_id, reason=data["reason"])
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".contracts"))
    db.session.commit()
    flash_message("terminated_msg", id=contract_id)
    return redirect(url_for(".contracts"))


# ---------------------------------------------------------------------------- weighing


def _delivery_form() -> tuple[int, dict[str, Any]]:
    """The weighing form as (contract id, the delivery's fields). Raises ValidationFailed."""
    form = request.form
    weight_g = parse_scaled(form.get("weight_kg"), 3)
    if weight_g is None:
        raise ValidationFailed(_l("weight: write it like 86.75 (kg, at most three decimals)."))
    fields: dict[str, Any] = {"delivered_on": form.get("delivered_on", ""), "weight_g": weight_g}
    grade = (form.get("grade") or "").strip()
    if grade:  # empty: the contract's grade
        fields["grade"] = grade
    data = load(DeliveryIn(), fields)
    data.setdefault("grade", None)
    return _whole(form.get("contract_id"), "contract_id"), data


@bp.route("/admin/weighing", methods=["GET", "POST"])
@admin_page
def weighing() -> Any:
    """The weighing station: choose the contract, weigh, see the price, then record it."""
    quote = None
    form = request.form if request.method == "POST" else {}
    if request.method == "POST":
        try:
            contract_id, data = _delivery_form()
            quote = contract_service.quote_delivery(db.session, contract_id, **data)
        except DomainError as error:
            refuse(error)
            return redirect(url_for(".weighing"))
    active = reads.active_contracts(db.session)
    return render_template(
        "console/weighing.html",
        contracts=active,
        farmers={f.id: f.display_name for f in reads.farmers(db.session)},
        names=reads.product_names(db.session, {c.product_id for c in active}),
        quote=quote,
        form=form,
        today=_today(),
    )


@bp.route("/admin/weighing/record", methods=["POST"])
@admin_page
def weighing_record() -> Any:
    try:
        contract_id, data = _delivery_form()
        delivery = contract_service.record_delivery(
            db.session, contract_id, **data, recorded_by=page_user().id
        )
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".weighing"))
    db.session.commit()
    flash_message("delivery_saved", id=delivery.id, amount=yuan(delivery.amount_fen))
    return redirect(url_for(".weighing"))
