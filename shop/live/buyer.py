"""The buyer's own pages: sign up (``/signup``), my orders (``/orders``), one order
(``/orders/{id}``) with pay and cancel.

Sign-up goes through the same rules as ``POST /api/v1/auth/register`` (its schema, its
per-address rate limit) and then signs the buyer in and returns them to the listing
they came from (a same-site ``next`` only). Paying: the sandbox completes the payment
at once (``make run``); with Stripe configured the page mounts Stripe's Payment
Element with the order's PaymentIntent and waits for the webhook to mark it paid.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import marshmallow as ma
from flask import (
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from shop.accounts import service as accounts
from shop.accounts.api import check_registration_rate
from shop.accounts.models import Role
from shop.accounts.schemas import RegisterIn
from shop.db import db, utcnow
from shop.errors import Conflict, DomainError, RateLimited
from shop.live.models import LiveListing
from shop.live.pages import _own_order, _products, bp
from shop.orders import service as orders
from shop.orders.models import Order, OrderState
from shop.orders.schemas import ShippingIn
from shop.payments import service as payments
from shop.payments.providers import get_provider, sandbox_active
from shop.web import current_lang, flash_message, flash_refusal
from shop.web.auth import login_required, page_user, public_page, safe_next, sign_in
from shop.web.messages import text

MY_ORDERS = 50
#: the states in which a buyer may still cancel (paid: refunded, until packing starts)
CANCELLABLE = (OrderState.PENDING_PAYMENT.value, OrderState.PAID.value)


# ---------------------------------------------------------------------------- sign-up


@bp.route("/signup", methods=["GET", "POST"])
@public_page
def signup() -> Any:
    """A new buyer account; signed in at once, back to where they came from."""
    next_url = safe_next(request.args.get("next") or request.form.get("next"))
    form = {k: (request.form.get(k) or "").strip() for k in ("email", "display_name", "phone")}
    errors: list[str] = []
    status = 200
    headers: dict[str, str] = {}
    if request.method == "POST":
        lang = current_lang()
        try:
            phone = _phone(form["phone"])
            data = RegisterIn().load(
                {
                    "email": form["email"],
                    "password": request.form.get("password") or "",
                    "display_name": form["display_name"],
                }
            )
            check_registration_rate()
            user = accounts.create_user(
                db.session,
                email=data["email"],
                password=data["password"],
                display_name=data["display_name"],
                roles=[Role.BUYER.value],
                scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
            )
            user.phone = phone
        except _BadPhone:
            errors, status = [text("signup_phone_invalid", lang)], 422
        except ma.ValidationError as error:
            fields = error.normalized_messages()
            errors = [text(f"signup_{name}_invalid", lang) for name in _known(fields)]
            status = 422
        except RateLimited as limited:
            errors, status, headers = [text("too_many_signups", lang)], 429, limited.headers
        except Conflict:
            db.session.rollback()
            errors, status = [text("signup_email_taken", lang)], 409
        else:
            db.session.commit()
            sign_in(user)
            flash_message("signed_up", name=user.display_name)
            return redirect(next_url or url_for("web.home"))
    page = render_template("live/signup.html", form=form, errors=errors, next=next_url)
    return page, status, headers


class _BadPhone(Exception):
    pass


def _phone(raw: str) -> str | None:
    """An optional phone, checked as the delivery form checks it."""
    if not raw:
        return None
    try:
        return str(ShippingIn().fields["phone"].deserialize(raw))
    except ma.ValidationError:
        raise _BadPhone from None


def _known(fields: dict[str, Any]) -> list[str]:
    """The fields a sign-up message exists for (anything else reads as the email's)."""
    names: list[str] = [n for n in ("email", "password", "display_name") if n in fields]
    return names or ["email"]


# ---------------------------------------------------------------------------- my orders


def _expired(order: Order) -> bool:
    """Past its payment deadline: expired, even before the expiry task has run."""
    return order.state == OrderState.EXPIRED or (
        order.state == OrderState.PENDING_PAYMENT and order.expires_at <= utcnow()
    )


@bp.route("/orders", methods=["GET"])
@login_required(Role.BUYER)
def my_orders() -> Any:
    """The buyer's orders, newest first."""
    found = db.session.scalars(
        select(Order)
        .where(Order.buyer_id == page_user().id)
        .order_by(Order.id.desc())
        .limit(MY_ORDERS)
    ).all()
    products = _products({line.product_id for o in found for line in o.lines})
    return render_template("live/my_orders.html", orders=found, products=products, expired=_expired)


@bp.route("/orders/<int:order_id>", methods=["GET"])
@bp.route("/live/orders/<int:order_id>", methods=["GET"])
@login_required(Role.BUYER)
def order(order_id: int) -> Any:
    """The order: lines, total, state; pay and a countdown while unpaid; cancel while
    allowed; tracking once shipped; after the deadline, say so and offer to buy again."""
    found = _own_order(order_id)
    products = _products({line.product_id for line in found.lines})
    listing_ids = [line.listing_id for line in found.lines if line.listing_id]
    session_id = None
    if listing_ids:
        session_id = db.session.scalar(
            select(LiveListing.session_id).where(LiveListing.id == listing_ids[0])
        )
    stripe_key = current_app.config.get("STRIPE_PUBLISHABLE_KEY")
    if sandbox_active():
        stripe_key = None
    stripe_js = str(current_app.config.get("STRIPE_JS_URL") or "")
    expired = _expired(found)
    page = render_template(
        "live/order.html",
        order=found,
        products=products,
        session_id=session_id,
        sandbox=sandbox_active(),
        expired=expired,
        can_pay=found.state == OrderState.PENDING_PAYMENT and not expired,
        can_cancel=found.state in CANCELLABLE and not expired,
        stripe_key=stripe_key,
        stripe_js=stripe_js,
    )
    response = make_response(page)
    if stripe_key:
        response.headers["Content-Security-Policy"] = _stripe_csp(stripe_js)
    return response


def _stripe_csp(stripe_js: str) -> str:
    """The pages' policy, opened for Stripe.js: its script, its frames, its API."""
    parts = urlsplit(stripe_js)
    origin = f"{parts.scheme}://{parts.netloc}"
    stripe = "https://js.stripe.com https://hooks.stripe.com"
    return (
        f"default-src 'self'; img-src 'self' data: https:; style-src 'self' {origin}; "
        f"script-src 'self' {origin}; frame-src {origin} {stripe}; "
        f"connect-src 'self' {origin} https://api.stripe.com; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


@bp.route("/orders/<int:order_id>/state", methods=["GET"])
@login_required(Role.BUYER)
def order_state(order_id: int) -> Any:
    """The order's state as JSON: the page polls it while the webhook is on its way."""
    return jsonify({"state": _own_order(order_id).state})


@bp.route("/orders/<int:order_id>/cancel", methods=["POST"])
@login_required(Role.BUYER)
def cancel(order_id: int) -> Any:
    """Cancel an unpaid order, or refund a paid one not yet being packed."""
    back = redirect(url_for(".order", order_id=order_id))
    _own_order(order_id)
    try:
        cancelled = orders.cancel_order(db.session, order_id, refund=get_provider().refund)
    except DomainError as error:
        db.session.rollback()
        flash_refusal(error)
        return back
    db.session.commit()
    flash_message("order_refunded_msg" if cancelled.state == "refunded" else "order_cancelled_msg")
    return back


@bp.route("/orders/<int:order_id>/pay", methods=["POST"])
@bp.route("/live/orders/<int:order_id>/pay", methods=["POST"])
@login_required(Role.BUYER)
def pay(order_id: int) -> Any:
    """Create the order's payment (once) and, in the sandbox, complete it as Stripe's
    webhook would. With Stripe the page pays with the Payment Element (``payment``)."""
    back = redirect(url_for(".order", order_id=order_id))
    found = _own_order(order_id)
    if found.state != OrderState.PENDING_PAYMENT:
        # A second tap after the payment went through: nothing to do, no error.
        return back
    provider = get_provider()
    try:
        payment = payments.start_payment(db.session, order_id, user=page_user(), provider=provider)
        db.session.commit()
        if provider.name != "sandbox":
            return back
        payments.sandbox_succeed(db.session, payment.payment_id, provider=provider)
        db.session.commit()
    except DomainError as error:
        db.session.rollback()
        if orders.get_order(db.session, order_id).state != OrderState.PENDING_PAYMENT:
            return back  # paid meanwhile (a double tap): say nothing alarming
        flash_refusal(error)
        return back
    if orders.get_order(db.session, order_id).state != "pending_payment":
        flash_message("paid_thanks")
    return back


@bp.route("/orders/<int:order_id>/payment", methods=["POST"])
@login_required(Role.BUYER)
def payment(order_id: int) -> Any:
    """The order's PaymentIntent client secret for Stripe's Payment Element (JSON)."""
    _own_order(order_id)
    try:
        started = payments.start_payment(
            db.session, order_id, user=page_user(), provider=get_provider()
        )
    except DomainError as error:
        db.session.rollback()
        state = orders.get_order(db.session, order_id).state
        return jsonify({"state": state, "error": error.status}), error.status
    db.session.commit()
    return jsonify({"client_secret": started.client_secret, "state": "pending_payment"})
