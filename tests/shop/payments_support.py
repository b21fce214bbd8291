"""Helpers and fixtures for the payment tests (imported by test_payments*.py / test_webhook*.py).

Stripe is the real localstripe server (``tests/support/stripe.py``); webhook events are
signed with Stripe's real scheme. Nothing of ours is faked.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from shop.db import db
from shop.payments.models import Payment, ProcessedEvent
from tests.support.stripe import SECRET_KEY, WEBHOOK_SECRET, LocalStripe, sign_webhook

WEBHOOK = "/api/v1/payments/stripe/webhook"
STRIPE_KEYS = ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STRIPE_TIMEOUT_S")

_event_numbers = itertools.count(1)


@pytest.fixture
def stripe_on(app: Flask, localstripe: LocalStripe) -> Iterator[LocalStripe]:
    """The app configured for Stripe (localstripe) for this test; sandbox again afterwards."""
    saved = {key: app.config.get(key) for key in STRIPE_KEYS}
    app.config.update(
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_API_BASE=localstripe.base_url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    try:
        yield localstripe
    finally:
        app.config.update(saved)


@pytest.fixture
def webhook_secret(app: Flask) -> Iterator[str]:
    """Only the webhook secret set (the sandbox stays the provider)."""
    saved = app.config.get("STRIPE_WEBHOOK_SECRET")
    app.config["STRIPE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    try:
        yield WEBHOOK_SECRET
    finally:
        app.config["STRIPE_WEBHOOK_SECRET"] = saved


def stripe_unreachable(app: Flask) -> None:
    """Point the app at a port where nothing listens (``stripe_on`` restores it after)."""
    app.config["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # the discard port
    app.config["STRIPE_TIMEOUT_S"] = 2


def stripe_client(localstripe: LocalStripe) -> stripe.StripeClient:
    """A client playing the buyer's side (Stripe.js) and the dashboard."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe.base_url})


def pay_at_stripe(localstripe: LocalStripe, payment_id: str) -> dict[str, Any]:
    """Confirm the PaymentIntent with a test card, as the buyer's app would; the PI."""
    client = stripe_client(localstripe)
    card = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(payment_id, params={"payment_method": card.id})
    intent = client.v1.payment_intents.confirm(payment_id)
    assert intent.status == "succeeded"
    return intent.to_dict()


def intent_event(
    intent: dict[str, Any], event_type: str = "payment_intent.succeeded", **changes: Any
) -> dict[str, Any]:
    """A Stripe event around a PaymentIntent (or charge) object, with a fresh event id."""
    return {
        "id": f"evt_test_{next(_event_numbers)}",
        "object": "event",
        "api_version": "2024-06-20",
        "type": event_type,
        "data": {"object": {**intent, **changes}},
    }


def succeeded_intent(payment: dict[str, Any], order_id: int, **changes: Any) -> dict[str, Any]:
    """A ``payment_intent.succeeded`` object as Stripe sends it, for a payment we created."""
    intent = {
        "id": payment["payment_id"],
        "object": "payment_intent",
        "amount": payment["amount_fen"],
        "amount_received": payment["amount_fen"],
        "currency": "cny",
        "status": "succeeded",
        "client_secret": payment["client_secret"],
        "metadata": {"order_id": str(order_id)},
    }
    return {**intent, **changes}


def deliver(
    client: FlaskClient,
    event: dict[str, Any] | str,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> Any:
    body, headers = sign_webhook(event, secret, timestamp)
    return client.post(WEBHOOK, data=body, headers=headers)


def pay_for(client: FlaskClient, headers: dict[str, str], order_id: int) -> Any:
    return client.post(f"/api/v1/orders/{order_id}/payment", headers=headers)


def order_state(order_id: int) -> str:
    from shop.orders.models import Order

    db.session.expire_all()
    order = db.session.get(Order, order_id)
    assert order is not None
    return order.state


def product_stock(product_id: int) -> int:
    from shop.catalog.models import Product

    db.session.expire_all()
    product = db.session.get(Product, product_id)
    assert product is not None
    return product.stock


def events_for(order_id: int) -> list[ProcessedEvent]:
    return list(
        db.session.scalars(
            select(ProcessedEvent)
            .where(ProcessedEvent.order_id == order_id)
            .order_by(ProcessedEvent.id)
        )
    )


def payment_row(order_id: int) -> Payment:
    db.session.expire_all()
    payment = db.session.scalars(select(Payment).where(Payment.order_id == order_id)).one()
    return payment


def payment_count(order_id: int) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Payment).where(Payment.order_id == order_id)
    )


def posts(localstripe: LocalStripe, path: str) -> list[dict[str, Any]]:
    return [r for r in localstripe.requests_seen() if r["path"] == path]


class Recorder:
    """Collects a domain event's deliveries (``shop.events``) during a test."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **payload: Any) -> None:
        self.calls.append(payload)


@pytest.fixture
def paid_events() -> Iterator[Recorder]:
    from shop.core import events

    recorder = Recorder()
    events.subscribe("order.paid", recorder)
    try:
        yield recorder
    finally:
        events.unsubscribe("order.paid", recorder)


Placer = Callable[..., Any]


@pytest.fixture
def shop(auth: Any, make_product: Any, place: Any) -> tuple[Any, dict[str, str], Any, Any]:
    """A buyer with a two-bag order of shiitake (2 × 3990 fen) out of 10 in stock."""
    buyer, headers = auth("buyer")
    product = make_product(stock=10, price_fen=3990)
    order = place(buyer, [{"product_id": product.id, "qty": 2}])
    return buyer, headers, product, order
