"""The streamer's console (``/studio/sessions/{id}``): list, edit and withdraw products,
start, pin, end — and the summary once the session has ended.

Steps that are easy to regret ask first, on a page of their own (a real step, not a
script's ``confirm()``): a flash price under half the list price, starting (saying so
when it is before the scheduled time) and ending. The form then posts again with
``confirm=yes``.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import flash, redirect, render_template, request, url_for

from shop.accounts.models import Role
from shop.catalog import service as catalog
from shop.catalog.models import Product
from shop.db import db, utcnow
from shop.errors import DomainError
from shop.live import service
from shop.live.models import LiveSession, SessionState
from shop.live.pages import (
    _field_errors,
    _listing_of,
    _listing_view,
    _own_session,
    _recent_orders,
    bp,
)
from shop.live.schemas import ListingIn, ListingPatchIn
from shop.web import current_lang, flash_message, flash_refusal
from shop.web.auth import login_required, page_user, public_page
from shop.web.format import local, parse_whole, parse_yuan, yuan
from shop.web.messages import alone, text

ADD_FIELDS = ("product_id", "flash_price", "allotted_qty", "per_buyer_limit")
EDIT_FIELDS = ("flash_price", "allotted_qty", "per_buyer_limit")


def _confirmed() -> bool:
    return request.form.get("confirm") == "yes"


def _ask(live: LiveSession, action: str, message: str, fields: dict[str, str]) -> Any:
    """The confirmation step: the message, the same form again with ``confirm=yes``."""
    return render_template(
        "live/confirm.html", live=live, action=action, message=message, fields=fields
    )


def _too_cheap(product: Product | None, price_fen: int | None) -> bool:
    """Under half the list price: most likely a typo (¥0.01 for ¥59)."""
    return product is not None and price_fen is not None and price_fen * 2 < product.price_fen


def _cheap_message(product: Product, price_fen: int) -> str:
    return text(
        "confirm_cheap",
        current_lang(),
        name=product.name,
        price=yuan(price_fen),
        list_price=yuan(product.price_fen),
    )


def _render_console(
    live: LiveSession,
    *,
    add_form: dict[str, str] | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> Any:
    products = catalog.listable_products(db.session, page_user().id, limit=200)
    ended = live.state == SessionState.ENDED
    return (
        render_template(
            "live/console.html",
            live=live,
            stock_products=products,
            stats=service.session_stats(db.session, live.id),
            recent=_recent_orders(live),
            sales=service.listing_sales(db.session, live.id) if ended else {},
            add_form=add_form or {},
            add_errors=errors or [],
            **_listing_view(live),
        ),
        status,
    )


@bp.route("/studio/sessions/<int:session_id>", methods=["GET"])
@login_required(Role.STREAMER)
def console(session_id: int) -> Any:
    """One session: listings with what remains, edit, withdraw, pin, start, end, add a
    listing, stats; once ended, what each listing sold and returned."""
    return _render_console(_own_session(session_id))


@bp.route("/studio/sessions/<int:session_id>/panel", methods=["GET"])
@login_required(Role.STREAMER)
def panel(session_id: int) -> Any:
    """Stats and recent orders as an HTML fragment: ``live.js`` swaps it in on each event."""
    live = _own_session(session_id)
    return render_template(
        "live/_panel.html",
        live=live,
        stats=service.session_stats(db.session, live.id),
        recent=_recent_orders(live),
    )


@bp.route("/studio/sessions/<int:session_id>/listings/<int:listing_id>/card", methods=["GET"])
@login_required(Role.STREAMER)
def console_card(session_id: int, listing_id: int) -> Any:
    """One listing as the console shows it: ``live.js`` adds or replaces it on events."""
    live = _own_session(session_id)
    return render_template(
        "live/_console_card.html",
        live=live,
        listing=_listing_of(live, listing_id),
        **_listing_view(live),
    )


@bp.route("/live/<int:session_id>/listings/<int:listing_id>/card", methods=["GET"])
@public_page
def storefront_card(session_id: int, listing_id: int) -> Any:
    """One listing as the storefront shows it (for listings added while people watch)."""
    live = service.get_session(db.session, session_id)
    listing = _listing_of(live, listing_id)
    if listing.withdrawn_at is not None:
        return "", 204
    return render_template(
        "live/_listing_card.html", live=live, listing=listing, **_listing_view(live)
    )


@bp.route("/studio/sessions/<int:session_id>/listings", methods=["POST"])
@login_required(Role.STREAMER)
def add_listing(session_id: int) -> Any:
    """Add a listing; a refusal shows the console again with the form as it was sent."""
    live = _own_session(session_id)
    form = {k: (request.form.get(k) or "").strip() for k in ADD_FIELDS}

    def refuse(messages: list[str], status: int) -> Any:
        db.session.rollback()
        return _render_console(
            _own_session(session_id), add_form=form, errors=messages, status=status
        )

    price = parse_yuan(form["flash_price"])
    product_id = parse_whole(form["product_id"])
    allotted = parse_whole(form["allotted_qty"])
    limit = parse_whole(form["per_buyer_limit"]) if form["per_buyer_limit"] else None
    lang = current_lang()
    if price is None:
        return refuse([text("price_invalid", lang)], 422)
    if product_id is None or allotted is None or (form["per_buyer_limit"] and limit is None):
        return refuse([text("number_invalid", lang)], 422)
    try:
        data = ListingIn().load(
            {
                "product_id": product_id,
                "flash_price_fen": price,
                "allotted_qty": allotted,
                "per_buyer_limit": limit,
            }
        )
        product = catalog.get_product(db.session, product_id)
        catalog.check_can_list(product, page_user().id)
        if _too_cheap(product, price) and not _confirmed():
            return _ask(
                live,
                url_for(".add_listing", session_id=session_id),
                _cheap_message(product, price),
                form,
            )
        service.add_listing(db.session, session_id, streamer_id=page_user().id, **data)
    except ma.ValidationError as error:
        return refuse(_field_errors(error), 422)
    except DomainError as error:
        return refuse([f"{alone(_refusal_key(error), lang)}：{error.detail}"], error.status)
    name = product.name
    db.session.commit()
    flash_message("listing_added_named", name=name)
    return redirect(url_for(".console", session_id=session_id))


def _refusal_key(error: DomainError) -> str:
    return "error_409" if error.status == 409 else "error_400"


@bp.route("/studio/sessions/<int:session_id>/listings/<int:listing_id>/edit", methods=["POST"])
@login_required(Role.STREAMER)
def edit_listing(session_id: int, listing_id: int) -> Any:
    """Change price, allotment or limit while live; a price under half asks first."""
    back = redirect(url_for(".console", session_id=session_id))
    live = _own_session(session_id)
    listing = _listing_of(live, listing_id)
    form = {k: (request.form.get(k) or "").strip() for k in EDIT_FIELDS}
    price = parse_yuan(form["flash_price"])
    allotted = parse_whole(form["allotted_qty"])
    limit = parse_whole(form["per_buyer_limit"]) if form["per_buyer_limit"] else None
    if price is None:
        flash_message("price_invalid", "error")
        return back
    if allotted is None or (form["per_buyer_limit"] and limit is None):
        flash_message("number_invalid", "error")
        return back
    try:
        data = ListingPatchIn().load(
            {"flash_price_fen": price, "allotted_qty": allotted, "per_buyer_limit": limit}
        )
    except ma.ValidationError as error:
        for message in _field_errors(error):
            flash(message, "error")
        return back
    product = db.session.get(Product, listing.product_id)
    if price != listing.flash_price_fen and _too_cheap(product, price) and not _confirmed():
        assert product is not None
        return _ask(
            live,
            url_for(".edit_listing", session_id=session_id, listing_id=listing_id),
            _cheap_message(product, price),
            form,
        )
    try:
        service.update_listing(
            db.session, session_id, listing_id, streamer_id=page_user().id, **data
        )
    except DomainError as error:
        db.session.rollback()
        flash_refusal(error)
        return back
    db.session.commit()
    flash_message("listing_saved", name=product.name if product else "")
    return back


@bp.route("/studio/sessions/<int:session_id>/listings/<int:listing_id>/withdraw", methods=["POST"])
@login_required(Role.STREAMER)
def withdraw_listing(session_id: int, listing_id: int) -> Any:
    live = _own_session(session_id)
    product = db.session.get(Product, _listing_of(live, listing_id).product_id)
    streamer_id = page_user().id
    return _session_action(
        session_id,
        lambda: service.withdraw_listing(
            db.session, session_id, listing_id, streamer_id=streamer_id
        ),
        "listing_withdrawn",
        name=product.name if product else "",
    )


def _session_action(session_id: int, action: Any, key: str, **fields: Any) -> Any:
    back = redirect(url_for(".console", session_id=session_id))
    try:
        action()
    except DomainError as error:
        db.session.rollback()
        flash_refusal(error)
        return back
    db.session.commit()
    flash_message(key, **fields)
    return back


@bp.route("/studio/sessions/<int:session_id>/start", methods=["POST"])
@login_required(Role.STREAMER)
def start(session_id: int) -> Any:
    """Go live, after a confirmation that says so when it is before the scheduled time."""
    live = _own_session(session_id)
    streamer_id = page_user().id
    if live.state == SessionState.SCHEDULED and not _confirmed():
        early = live.scheduled_at > utcnow()
        message = text(
            "confirm_start_early" if early else "confirm_start",
            current_lang(),
            time=local(live.scheduled_at),
        )
        return _ask(live, url_for(".start", session_id=session_id), message, {})
    return _session_action(
        session_id,
        lambda: service.start_session(db.session, session_id, streamer_id=streamer_id),
        "started",
    )


@bp.route("/studio/sessions/<int:session_id>/listings/<int:listing_id>/pin", methods=["POST"])
@login_required(Role.STREAMER)
def pin(session_id: int, listing_id: int) -> Any:
    live = _own_session(session_id)
    product = db.session.get(Product, _listing_of(live, listing_id).product_id)
    streamer_id = page_user().id
    return _session_action(
        session_id,
        lambda: service.pin_listing(db.session, session_id, listing_id, streamer_id=streamer_id),
        "pinned_named",
        name=product.name if product else "",
    )


@bp.route("/studio/sessions/<int:session_id>/end", methods=["POST"])
@login_required(Role.STREAMER)
def end(session_id: int) -> Any:
    """End the session, after a confirmation."""
    live = _own_session(session_id)
    streamer_id = page_user().id
    if live.state != SessionState.ENDED and not _confirmed():
        message = text("confirm_end", current_lang())
        return _ask(live, url_for(".end", session_id=session_id), message, {})
    return _session_action(
        session_id,
        lambda: service.end_session(db.session, session_id, streamer_id=streamer_id),
        "ended_msg",
    )
