"""The farmer's statement (``/farmer``): contracts with their premium and weights,
deliveries each with its market price, premium and amount, payouts with their state and
reason, and the totals — read through the same queries as ``/api/v1/farmers/me/…``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from contracts import reads, service, trace
from contracts.models import Contract, Delivery, Payout
from contracts.payouts import service as payouts
from shop.accounts.models import Role
from shop.catalog.models import Product
from shop.db import db
from shop.errors import DomainError, ValidationFailed
from shop.i18n import _l
from shop.pagination import paginate
from shop.web import flash_message, flash_refusal, page_blueprint
from shop.web.auth import login_required, page_user, public_page
from shop.web.format import parse_whole

bp = page_blueprint("farmer_pages", __name__)

PAGE_SIZE = 50


def _product_names(product_ids: set[int]) -> dict[int, str]:
    if not product_ids:
        return {}
    rows = db.session.execute(select(Product.id, Product.name).where(Product.id.in_(product_ids)))
    return {row.id: row.name for row in rows}


@bp.route("/farmer", methods=["GET"])
@login_required(Role.FARMER)
def statement() -> Any:
    """The statement; ``?before=`` pages back through older deliveries."""
    farmer_id = page_user().id
    contracts = list(
        db.session.scalars(service.farmer_contracts_query(farmer_id).order_by(Contract.id.desc()))
    )
    cursor = request.args.get("before") or None
    if cursor is not None and not 0 < (parse_whole(cursor) or 0) <= 2**31 - 1:
        raise ValidationFailed(_l("`before` is not a page this server gave out."))
    deliveries = paginate(
        db.session,
        service.farmer_deliveries_query(farmer_id),
        Delivery.id,
        limit=PAGE_SIZE,
        cursor=cursor,
        descending=True,
    )
    in_payout = payouts.delivery_payouts(db.session, [d.id for d in deliveries["items"]])
    adjustments = reads.farmer_adjustments(db.session, farmer_id)
    payout_page = paginate(
        db.session,
        payouts.farmer_payouts_query(farmer_id),
        Payout.id,
        limit=PAGE_SIZE,
        cursor=None,
        descending=True,
    )
    lines = payouts.payout_lines(db.session, [p.id for p in payout_page["items"]])
    names = _product_names(
        {c.product_id for c in contracts}
        | {d.product_id for d in deliveries["items"]}
        | {d.product_id for ls in lines.values() for d in ls["deliveries"]}
    )
    return render_template(
        "contracts/farmer.html",
        contracts=contracts,
        deliveries=deliveries["items"],
        older=deliveries["next_cursor"],
        in_payout=in_payout,
        payouts=payout_page["items"],
        payout_lines=lines,
        adjustments=adjustments,
        no_account=payouts.NO_ACCOUNT,
        totals=payouts.farmer_totals(db.session, farmer_id),
        names=names,
        lots=trace.farmer_lots(db.session, farmer_id),
    )


@bp.route("/farmer/contracts/<int:contract_id>/accept", methods=["GET"])
@login_required(Role.FARMER)
def confirm_accept(contract_id: int) -> Any:
    """Before accepting, the contract's terms once more, in words."""
    contract = service.contract_for(db.session, contract_id, page_user())
    return render_template(
        "contracts/confirm.html",
        contract=contract,
        product=_product_names({contract.product_id}).get(contract.product_id, ""),
    )


@bp.route("/farmer/contracts/<int:contract_id>/accept", methods=["POST"])
@login_required(Role.FARMER)
def accept(contract_id: int) -> Any:
    """The farmer accepts a draft contract offered to them."""
    try:
        contract = service.accept_contract(db.session, contract_id, page_user())
    except DomainError as error:
        db.session.rollback()
        flash_refusal(error)
        return redirect(url_for(".statement"))
    db.session.commit()
    flash_message("contract_accepted", id=contract.id)
    return redirect(url_for(".statement"))


@bp.route("/t/<string(maxlength=16):code>", methods=["GET"])
@public_page
def trace_page(code: str) -> Any:
    """The public page of a parcel (its slip's QR code opens it): where it came from."""
    parcel = trace.trace(db.session, code, tz_name=current_app.config["SHOP_TIMEZONE"])
    return render_template("contracts/trace.html", parcel=parcel)
