"""Order endpoints: place (idempotent), list, read, cancel, ship, delivered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, requires
from shop.db import db
from shop.errors import NotFound
from shop.i18n import _l
from shop.live.stock_view import stock_view
from shop.orders import service
from shop.orders.models import Order
from shop.orders.schemas import (
    IdempotencyHeaders,
    OrderIn,
    OrderListQuery,
    OrderOut,
    OrderPage,
    ShipIn,
)
from shop.pagination import paginate

blp = Blueprint("orders", __name__, url_prefix="/api/v1", description="Orders")


def order_json(order: Order | service.NewOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "buyer_id": order.buyer_id,
        "state": order.state,
        "total_fen": order.total_fen,
        "lines": [
            {
                "product_id": line.product_id,
                "listing_id": line.listing_id,
                "qty": line.qty,
                "unit_price_fen": line.unit_price_fen,
            }
            for line in order.lines
        ],
        "shipping": {
            "name": order.ship_name,
            "phone": order.ship_phone,
            "address": order.ship_address,
            "region": order.ship_region,
        },
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        "paid_at": order.paid_at,
        "carrier": order.carrier,
        "tracking_no": order.tracking_no,
        "shipped_at": order.shipped_at,
        "delivered_at": order.delivered_at,
        "trace_code": order.trace_code,
    }


def visible_order(order_id: int) -> Order:
    """The order, if the caller is its buyer or an admin; else 404 (existence does not leak)."""
    user = current_user()
    order = service.get_order(db.session, order_id)
    if order.buyer_id != user.id and not user.has_role(Role.ADMIN):
        raise NotFound(_l("No order %(order_id)s.", order_id=order_id))
    return order


@blp.route("/orders", methods=["POST"])
@requires(Role.BUYER)
@blp.arguments(OrderIn)
@blp.arguments(IdempotencyHeaders, location="headers")
@blp.alt_response(201, schema=OrderOut, description="The order was placed", success=True)
@blp.alt_response(200, schema=OrderOut, description="Repeat of an earlier request with this key")
@blp.alt_response(
    409, response="CONFLICT", description="out-of-stock; limit (per-buyer); conflict (not live)"
)
def place_order(data: dict[str, Any], headers: dict[str, Any]) -> Any:
    """Place an order against live listings (flash price) or products (list price).

    Send a fresh `Idempotency-Key` per order; repeating the request with the same key
    returns the same order (200) instead of a second one.
    """
    order, created = service.place_order(
        db.session,
        buyer_id=current_user().id,
        lines=data["lines"],
        shipping=data["shipping"],
        idempotency_key=headers["idempotency_key"],
        payment_timeout_s=current_app.config["ORDER_PAYMENT_TIMEOUT_S"],
        view=stock_view(current_app),
    )
    db.session.commit()
    # A flash sale's accepts answer here by the hundred: the document OrderOut would
    # dump, built directly (the same bytes as GET /orders/{id}: test_orders_api.py,
    # test_orders_at_once.py).
    return current_app.json.response(dumped(order_json(order))), 201 if created else 200


def dumped(document: dict[str, Any]) -> dict[str, Any]:
    """``order_json``'s document as ``OrderOut`` dumps it: times in ISO 8601."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in document.items()}


@blp.route("/orders", methods=["GET"])
@requires(Role.BUYER, Role.ADMIN)
@blp.arguments(OrderListQuery, location="query")
@blp.response(200, OrderPage)
def list_orders(query: dict[str, Any]) -> Any:
    """Orders, newest first: a buyer's own; every order for an admin."""
    user = current_user()
    stmt = select(Order)
    if not user.has_role(Role.ADMIN):
        stmt = stmt.where(Order.buyer_id == user.id)
    if query.get("state"):
        stmt = stmt.where(Order.state == query["state"])
    page = paginate(
        db.session, stmt, Order.id, limit=query["limit"], cursor=query["cursor"], descending=True
    )
    return {**page, "items": [order_json(o) for o in page["items"]]}


@blp.route("/orders/<int:order_id>", methods=["GET"])
@requires(Role.BUYER, Role.ADMIN)
@blp.response(200, OrderOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_order(order_id: int) -> Any:
    """One order: its buyer or an admin."""
    return order_json(visible_order(order_id))


@blp.route("/orders/<int:order_id>/cancel", methods=["POST"])
@requires(Role.BUYER, Role.ADMIN)
@blp.response(200, OrderOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Not cancellable in its state")
@blp.alt_response(502, response="BAD_GATEWAY", description="payment: the refund failed")
def cancel_order(order_id: int) -> Any:
    """Cancel an unpaid order, or refund a paid one that is not yet being packed."""
    visible_order(order_id)
    # Imported here: payments builds on orders, not the other way round.
    from shop.payments.providers import get_provider

    order = service.cancel_order(db.session, order_id, refund=get_provider().refund)
    db.session.commit()
    return order_json(order)


@blp.route("/orders/<int:order_id>/ship", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(ShipIn)
@blp.response(200, OrderOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Not packed")
def ship_order(data: dict[str, Any], order_id: int) -> Any:
    """Hand a packed order to the carrier."""
    order = service.mark_shipped(
        db.session, order_id, carrier=data["carrier"], tracking_no=data["tracking_no"]
    )
    db.session.commit()
    return order_json(order)


@blp.route("/orders/<int:order_id>/delivered", methods=["POST"])
@requires(Role.ADMIN)
@blp.response(200, OrderOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="Not shipped")
def deliver_order(order_id: int) -> Any:
    """Record that a shipped order arrived."""
    order = service.mark_delivered(db.session, order_id)
    db.session.commit()
    return order_json(order)
