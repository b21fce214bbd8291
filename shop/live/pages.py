"""Live-session pages: the streamer's console (``/studio``) and the public storefront
(``/live/{id}``) with its buy → order → payment steps.

Everything works as plain forms; the few lines of ``live.js`` only keep remaining counts,
the pinned product and the console's stats current from the session's SSE stream.
Orders and payments go through the same services as the API (idempotency key per form
render, the sandbox's stand-in for Stripe when no Stripe key is configured).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask import current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from media import service as media_service
from shop.accounts.models import Role
from shop.catalog import images
from shop.catalog.models import Product
from shop.db import db
from shop.errors import DomainError, Forbidden, NotFound
from shop.i18n import _l, translate_validation
from shop.live import service
from shop.live.models import LiveListing, LiveSession
from shop.live.schemas import SessionIn
from shop.live.stock_view import stock_view
from shop.orders import service as orders
from shop.orders.models import Order, OrderLine
from shop.orders.schemas import IdempotencyHeaders, ShippingIn
from shop.web import flash_message, page_blueprint
from shop.web.auth import login_required, page_user, public_page
from shop.web.format import parse_whole

bp = page_blueprint("live_pages", __name__)

RECENT_ORDERS = 20
MAX_QTY = 999


# ---------------------------------------------------------------------------- helpers


def _own_session(session_id: int) -> LiveSession:
    """The streamer's own session. Raises NotFound, Forbidden."""
    live = service.get_session(db.session, session_id)
    if live.streamer_id != page_user().id:
        raise Forbidden(_l("Only the streamer who owns this session may open its console."))
    return live


def _products(product_ids: set[int]) -> dict[int, Product]:
    if not product_ids:
        return {}
    return {p.id: p for p in db.session.scalars(select(Product).where(Product.id.in_(product_ids)))}


def _listing_view(live: LiveSession) -> dict[str, Any]:
    listings = list(live.listings)
    products = _products({listing.product_id for listing in listings})
    pictures = images.images_of(db.session, products, current_app.config["MEDIA_URL_BASE"])
    return {"listings": listings, "products": products, "pictures": pictures}


def _recent_orders(live: LiveSession) -> list[dict[str, Any]]:
    """The session's latest orders: number, state, units of this session, total, time."""
    listing_ids = [listing.id for listing in live.listings]
    if not listing_ids:
        return []
    rows = db.session.execute(
        select(Order.id, Order.state, Order.total_fen, Order.created_at, OrderLine.qty)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(OrderLine.listing_id.in_(listing_ids))
        .order_by(Order.id.desc())
        .limit(RECENT_ORDERS * 5)
    ).all()
    recent: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = recent.setdefault(
            row.id,
            {
                "id": row.id,
                "state": row.state,
                "total_fen": row.total_fen,
                "created_at": row.created_at,
                "units": 0,
            },
        )
        entry["units"] += row.qty
    return list(recent.values())[:RECENT_ORDERS]


def _field_errors(error: ma.ValidationError) -> list[str]:
    messages = error.normalized_messages()
    out: list[str] = []
    for field, problems in messages.items():
        if isinstance(problems, dict):
            problems = [f"{k}: {translate_validation(v)}" for k, v in problems.items()]
        out.extend(f"{field}: {translate_validation(p)}" for p in problems)
    return out


def _local_input(raw: str | None) -> datetime | None:
    """A ``datetime-local`` form value, read in SHOP_TIMEZONE, as an aware datetime."""
    try:
        naive = datetime.fromisoformat((raw or "").strip())
    except ValueError:
        return None
    if naive.tzinfo is not None:
        return None
    return naive.replace(tzinfo=ZoneInfo(current_app.config["SHOP_TIMEZONE"]))


# ---------------------------------------------------------------------------- studio


@bp.route("/studio", methods=["GET"])
@login_required(Role.STREAMER)
def studio() -> Any:
    """The streamer's sessions, newest first, and a form to schedule one."""
    sessions = db.session.scalars(
        select(LiveSession)
        .where(LiveSession.streamer_id == page_user().id)
        .order_by(LiveSession.id.desc())
        .limit(100)
    ).all()
    return render_template("live/studio.html", sessions=sessions)


@bp.route("/studio/sessions", methods=["POST"])
@login_required(Role.STREAMER)
def schedule() -> Any:
    when = _local_input(request.form.get("scheduled_at"))
    try:
        data = SessionIn().load(
            {
                "title": (request.form.get("title") or "").strip(),
                "scheduled_at": when.isoformat() if when else "",
            }
        )
    except ma.ValidationError as error:
        for message in _field_errors(error):
            flash(message, "error")
        return redirect(url_for(".studio"))
    live = service.schedule_session(
        db.session,
        streamer_id=page_user().id,
        title=data["title"],
        scheduled_at=data["scheduled_at"],
    )
    db.session.commit()
    flash_message("scheduled", id=live.id)
    return redirect(url_for(".console", session_id=live.id))


# ---------------------------------------------------------------------------- storefront


@bp.route("/live/<int:session_id>", methods=["GET"])
@public_page
def storefront(session_id: int) -> Any:
    """The public page of a live session: the pinned product big, the others below."""
    live = service.get_session(db.session, session_id)
    return render_template(
        "live/storefront.html", live=live, cover=_cover_view(live), **_listing_view(live)
    )


def _cover_view(live: LiveSession) -> dict[str, Any] | None:
    """The cover's rendition URLs and the thumb's size, or None without a cover.

    Shown at the thumb's size (at most 320 px: fits a 360 px phone) with the medium
    rendition in ``srcset`` for sharp screens — sized by attributes, since the pages'
    CSP allows no inline styles.
    """
    if live.cover_media_id is None:
        return None
    base = current_app.config["MEDIA_URL_BASE"]
    cover = service.covers_of(db.session, [live], base)[live.id]
    sizes = {
        r.name: (r.width, r.height)
        for r in media_service.get_media(db.session, live.cover_media_id).renditions
    }
    if cover is None or "thumb" not in cover["renditions"] or "thumb" not in sizes:
        return None
    return {**cover, "thumb_size": sizes["thumb"], "medium_size": sizes.get("medium")}


def _listing_of(live: LiveSession, listing_id: int) -> LiveListing:
    for listing in live.listings:
        if listing.id == listing_id:
            return listing
    raise NotFound(
        _l(
            "Session %(live_id)s has no listing %(listing_id)s.",
            live_id=live.id,
            listing_id=listing_id,
        )
    )


@bp.route("/live/<int:session_id>/buy/<int:listing_id>", methods=["GET", "POST"])
@login_required(Role.BUYER)
def buy(session_id: int, listing_id: int) -> Any:
    """The order form for one listing. Each render carries a fresh idempotency key, so a
    double submit (or a retry after a lost answer) places one order, not two."""
    live = service.get_session(db.session, session_id)
    listing = _listing_of(live, listing_id)
    product = db.session.get(Product, listing.product_id)
    form: dict[str, str] = {"qty": "1", **last_shipping(page_user())}
    errors: list[str] = []
    status = 200
    if not listing.on_sale or listing.remaining <= 0:
        # Not offered: sold out, withdrawn, or the session is not live.
        return render_template(
            "live/buy.html", live=live, listing=listing, product=product, closed=True
        ), 409
    if request.method == "POST":
        form = {k: (request.form.get(k) or "").strip() for k in _BUY_FIELDS}
        try:
            order = _place(listing, form)
        except _FormInvalid as invalid:
            errors, status = invalid.messages, 422
        except DomainError as error:
            db.session.rollback()
            errors, status = [error.detail], error.status
        else:
            db.session.commit()
            return redirect(url_for(".order", order_id=order.id))
    return (
        render_template(
            "live/buy.html",
            live=live,
            listing=listing,
            product=product,
            form=form,
            errors=errors,
            idempotency_key=secrets.token_urlsafe(24),
            max_qty=min(MAX_QTY, listing.per_buyer_limit or MAX_QTY),
        ),
        status,
    )


_BUY_FIELDS = ("qty", "name", "phone", "address", "region", "idempotency_key")


class _FormInvalid(Exception):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages)
        self.messages = messages


def _place(listing: LiveListing, form: dict[str, str]) -> Order | orders.NewOrder:
    qty = parse_whole(form["qty"])
    if qty is None or not 1 <= qty <= MAX_QTY:
        raise _FormInvalid([f"qty: 1 … {MAX_QTY}"])
    try:
        shipping = ShippingIn().load({k: form[k] for k in ("name", "phone", "address", "region")})
        key = IdempotencyHeaders().load({"Idempotency-Key": form["idempotency_key"]})
    except ma.ValidationError as error:
        raise _FormInvalid(_field_errors(error)) from None
    order, _ = orders.place_order(
        db.session,
        buyer_id=page_user().id,
        lines=[{"listing_id": listing.id, "qty": qty}],
        shipping=shipping,
        idempotency_key=key["idempotency_key"],
        payment_timeout_s=current_app.config["ORDER_PAYMENT_TIMEOUT_S"],
        view=stock_view(current_app),
    )
    return order


def last_shipping(user: Any) -> dict[str, str]:
    """The address of the buyer's last order, offered again; else their name and phone."""
    last = db.session.scalars(
        select(Order).where(Order.buyer_id == user.id).order_by(Order.id.desc()).limit(1)
    ).first()
    if last is not None:
        return {
            "name": last.ship_name,
            "phone": last.ship_phone,
            "address": last.ship_address,
            "region": last.ship_region,
        }
    return {"name": user.display_name, "phone": user.phone or ""}


def _own_order(order_id: int) -> Order:
    """The signed-in buyer's order; anyone else's is 404 (its existence does not leak)."""
    order = orders.get_order(db.session, order_id)
    if order.buyer_id != page_user().id:
        raise NotFound(_l("No order %(order_id)s.", order_id=order_id))
    return order


# The console's and the buyer's own pages (same blueprint) live in their own modules.
from shop.live import buyer as _buyer  # noqa: E402, F401
from shop.live import console as _console  # noqa: E402, F401
