"""Creating an order's payment (Stripe via localstripe, and the sandbox), refunds on cancel,
who may call what, and the whole buyer scenario of ``make run`` through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from shop.app import create_app
from shop.db import db
from shop.payments.models import Outcome, PaymentStatus
from shop.payments.providers import SandboxProvider, StripeProvider, get_provider
from tests.shop import payments_support
from tests.shop.conftest import SHIPPING
from tests.shop.payments_support import (
    deliver,
    events_for,
    intent_event,
    order_state,
    pay_at_stripe,
    pay_for,
    payment_count,
    payment_row,
    posts,
    product_stock,
    stripe_client,
    stripe_unreachable,
    succeeded_intent,
)

stripe_on = payments_support.stripe_on
paid_events = payments_support.paid_events


shop = payments_support.shop


# --- Stripe (localstripe) ----------------------------------------------------------------


def test_a_payment_is_created_once_at_stripe_and_a_repeat_gets_the_same_intent(
    client, shop, stripe_on
):
    _, headers, _, order = shop
    first = pay_for(client, headers, order.id)
    again = pay_for(client, headers, order.id)

    assert first.status_code == 200, first.json
    assert again.status_code == 200
    assert again.json == first.json
    assert first.json["provider"] == "stripe"
    assert first.json["payment_id"].startswith("pi_")
    assert first.json["client_secret"].startswith(first.json["payment_id"] + "_secret_")
    assert first.json["amount_fen"] == order.total_fen == 7980
    assert first.json["currency"] == "cny"
    created = posts(stripe_on, "/v1/payment_intents")
    assert [r["idempotency_key"] for r in created] == [f"order-{order.id}"]
    intent = stripe_client(stripe_on).v1.payment_intents.retrieve(first.json["payment_id"])
    assert intent.amount == 7980
    assert intent.currency == "cny"
    assert intent.metadata["order_id"] == str(order.id)
    assert payment_count(order.id) == 1


def test_a_lost_answer_is_repaired_by_the_idempotency_key_not_a_second_intent(
    client, shop, stripe_on
):
    """Stripe answered but our row was lost (the request died after the call): the next
    call sends the same key and Stripe returns the same PaymentIntent."""
    _, headers, _, order = shop
    first = pay_for(client, headers, order.id).json
    payment = payment_row(order.id)
    db.session.delete(payment)
    db.session.commit()

    again = pay_for(client, headers, order.id)

    assert again.status_code == 200
    assert again.json["payment_id"] == first["payment_id"]
    keys = [r["idempotency_key"] for r in posts(stripe_on, "/v1/payment_intents")]
    assert keys == [f"order-{order.id}", f"order-{order.id}"]


def test_paying_at_stripe_and_the_signed_webhook_mark_the_order_paid(
    client, shop, stripe_on, paid_events
):
    _, headers, _, order = shop
    payment = pay_for(client, headers, order.id).json
    assert order_state(order.id) == "pending_payment"  # creating the intent pays nothing

    intent = pay_at_stripe(stripe_on, payment["payment_id"])  # buyer confirms with a card
    response = deliver(client, intent_event(intent))

    assert response.status_code == 200, response.json
    assert response.json["outcome"] == Outcome.PAID
    assert response.json["order_state"] == "paid"
    assert order_state(order.id) == "paid"
    assert payment_row(order.id).status == PaymentStatus.SUCCEEDED
    assert paid_events.calls == [{"order_id": order.id}]
    assert client.get(f"/api/v1/orders/{order.id}", headers=headers).json["state"] == "paid"


def test_cancelling_a_paid_order_refunds_it_at_stripe_once_and_returns_the_stock(
    client, shop, stripe_on
):
    _, headers, product, order = shop
    payment = pay_for(client, headers, order.id).json
    intent = pay_at_stripe(stripe_on, payment["payment_id"])
    deliver(client, intent_event(intent))
    assert product_stock(product.id) == 8

    response = client.post(f"/api/v1/orders/{order.id}/cancel", headers=headers)

    assert response.status_code == 200, response.json
    assert response.json["state"] == "refunded"
    assert product_stock(product.id) == 10
    refunds = posts(stripe_on, "/v1/refunds")
    assert [r["idempotency_key"] for r in refunds] == [f"refund-{order.id}"]
    charge = stripe_client(stripe_on).v1.charges.retrieve(intent["latest_charge"]["id"])
    assert charge.refunded is True
    assert charge.amount_refunded == 7980
    assert payment_row(order.id).status == PaymentStatus.REFUNDED
    # Stripe then tells us about the refund it made for us: recorded, nothing else.
    echo = deliver(client, intent_event(charge.to_dict(), "charge.refunded"))
    assert echo.json["outcome"] == Outcome.REFUND_RECORDED
    assert order_state(order.id) == "refunded"
    assert product_stock(product.id) == 10
    assert len(posts(stripe_on, "/v1/refunds")) == 1


def test_a_refund_stripe_refuses_leaves_the_order_paid_and_the_stock_taken(client, shop, stripe_on):
    """Marked paid by a (signed) event, but the intent was never charged at Stripe:
    Stripe refuses the refund, and the cancel rolls back as a whole."""
    _, headers, product, order = shop
    payment = pay_for(client, headers, order.id).json
    deliver(client, intent_event(succeeded_intent(payment, order.id)))
    assert order_state(order.id) == "paid"

    response = client.post(f"/api/v1/orders/{order.id}/cancel", headers=headers)

    assert response.status_code == 409
    assert response.json["type"] == "payment"
    assert "Stripe refused to refund the payment" in response.json["detail"]
    # The test client shares the test's app context; a server's request ends its own,
    # and that rolls the session back. Do here what the end of the request does.
    db.session.rollback()
    assert order_state(order.id) == "paid"
    assert product_stock(product.id) == 8
    assert payment_row(order.id).status == PaymentStatus.SUCCEEDED


def test_stripe_out_of_reach_is_a_502_payment_problem_and_writes_nothing(
    app, client, shop, stripe_on
):
    _, headers, _, order = shop
    stripe_unreachable(app)

    response = pay_for(client, headers, order.id)

    assert response.status_code == 502
    assert response.json["type"] == "payment"
    assert "Could not reach Stripe" in response.json["detail"]
    assert payment_count(order.id) == 0
    assert order_state(order.id) == "pending_payment"


def test_a_key_stripe_rejects_is_a_502_that_tells_the_operator_what_to_fix(
    app, client, shop, stripe_on
):
    _, headers, _, order = shop
    app.config["STRIPE_SECRET_KEY"] = "rk_wrong_key"

    response = pay_for(client, headers, order.id)

    assert response.status_code == 502
    assert response.json["type"] == "payment"
    assert "check STRIPE_SECRET_KEY" in response.json["detail"]
    assert payment_count(order.id) == 0


def test_an_order_that_is_not_waiting_for_payment_cannot_get_a_payment(
    client, shop, stripe_on, app
):
    _, headers, _, order = shop
    from shop.orders import service as orders

    orders.cancel_order(db.session, order.id, refund=lambda o: None)
    db.session.commit()

    response = pay_for(client, headers, order.id)

    assert response.status_code == 409
    assert response.json["type"] == "conflict"
    assert "cancelled" in response.json["detail"]
    assert posts(stripe_on, "/v1/payment_intents") == []


def test_an_order_past_its_payment_deadline_gets_no_new_payment(client, shop):
    _, headers, _, order = shop
    from datetime import timedelta

    from shop.orders.models import Order

    db.session.get(Order, order.id).expires_at -= timedelta(seconds=901)
    db.session.commit()

    response = pay_for(client, headers, order.id)

    assert response.status_code == 409
    assert payment_count(order.id) == 0


# --- the sandbox -------------------------------------------------------------------------


def test_the_sandbox_pays_an_order_through_the_same_event_handling(client, shop, paid_events):
    _, headers, product, order = shop
    payment = pay_for(client, headers, order.id).json
    assert payment["provider"] == "sandbox"
    assert payment["payment_id"].startswith("sbx_pi_")
    assert payment["amount_fen"] == 7980
    assert pay_for(client, headers, order.id).json == payment

    paid = client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed")
    again = client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed")

    assert paid.status_code == 200, paid.json
    assert paid.json["outcome"] == Outcome.PAID
    assert paid.json["duplicate"] is False
    assert paid.json["order_state"] == "paid"
    assert again.status_code == 200
    assert again.json["duplicate"] is True
    assert order_state(order.id) == "paid"
    assert paid_events.calls == [{"order_id": order.id}]
    assert [e.outcome for e in events_for(order.id)] == [Outcome.PAID]
    assert product_stock(product.id) == 8


def test_a_sandbox_refund_on_cancel_returns_the_stock(client, shop):
    _, headers, product, order = shop
    payment = pay_for(client, headers, order.id).json
    client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed")

    response = client.post(f"/api/v1/orders/{order.id}/cancel", headers=headers)

    assert response.json["state"] == "refunded"
    assert payment_row(order.id).status == PaymentStatus.REFUNDED
    assert product_stock(product.id) == 10


def test_the_sandbox_endpoint_does_not_exist_when_stripe_is_configured(client, shop, stripe_on):
    _, headers, _, order = shop
    payment = pay_for(client, headers, order.id).json

    response = client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed")

    assert response.status_code == 404
    assert order_state(order.id) == "pending_payment"


@pytest.mark.parametrize(
    "payment_id", ["sbx_pi_nope", "sbx_pi_" + "0" * 24, "%00abc", "pi_" + "x" * 250]
)
def test_the_sandbox_refuses_an_unknown_payment_id(client, payment_id):
    response = client.post(f"/api/v1/payments/sandbox/{payment_id}/succeed")
    assert response.status_code == 404
    assert response.json["type"] == "not-found"


def test_the_sandbox_refuses_to_run_in_production(app_config):
    with pytest.raises(RuntimeError, match="SHANHUO_ENV=production"):
        SandboxProvider(env="production")
    with pytest.raises(RuntimeError, match="STRIPE_SECRET_KEY"):
        create_app({**app_config, "SHANHUO_ENV": "production", "STRIPE_SECRET_KEY": None})


def test_the_provider_follows_the_configuration(app: Flask, stripe_on):
    with app.app_context():
        assert isinstance(get_provider(), StripeProvider)
        app.config["STRIPE_SECRET_KEY"] = None
        assert isinstance(get_provider(), SandboxProvider)


# --- who may call what -------------------------------------------------------------------


def test_only_the_orders_buyer_may_create_its_payment(client, shop, auth):
    _, _, _, order = shop
    url = f"/api/v1/orders/{order.id}/payment"
    _, other_buyer = auth("buyer")
    _, admin = auth("admin")
    _, admin_buyer = auth("admin", "buyer")
    _, farmer = auth("farmer")

    assert client.post(url).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post(url, headers=farmer).status_code == 403
    assert client.post(url, headers=admin).status_code == 403
    refused = client.post(url, headers=admin_buyer)  # an admin may see it, not pay for it
    assert refused.status_code == 403
    assert refused.json["detail"] == "Only the order's buyer can pay for it."
    hidden = client.post(url, headers=other_buyer)  # another buyer: it does not exist
    assert hidden.status_code == 404
    assert hidden.json["type"] == "not-found"
    assert client.post("/api/v1/orders/999999/payment", headers=other_buyer).status_code == 404
    assert payment_count(order.id) == 0


def test_the_webhook_and_the_sandbox_need_no_token_but_prove_themselves_otherwise(client, shop):
    """Public: Stripe signs, the sandbox needs the unguessable payment id."""
    _, headers, _, order = shop
    assert client.post("/api/v1/payments/stripe/webhook", data=b"{}").status_code == 400
    assert client.post("/api/v1/payments/sandbox/sbx_pi_1/succeed").status_code == 404
    pay_for(client, headers, order.id)
    assert order_state(order.id) == "pending_payment"


# --- the whole scenario ------------------------------------------------------------------


def _json(response: Any, status: int) -> Any:
    assert response.status_code == status, response.json
    return response.json


def test_the_make_run_scenario_register_order_pay_and_be_paid(client, auth):
    """What a person does with curl on ``make run``: everything through the HTTP API."""
    _, admin = auth("admin")
    product = _json(
        client.post(
            "/api/v1/products",
            headers=admin,
            json={
                "sku": "XXG-SHIITAKE-500",
                "name": "香信谷 香菇 Shiitake",
                "category": "mushroom",
                "unit_label": "500 g bag",
                "unit_weight_g": 500,
                "price_fen": 3990,
                "stock": 20,
                "packing_rate_fen": 50,
            },
        ),
        201,
    )
    _json(
        client.post(
            "/api/v1/auth/register",
            json={"email": "wang@buyer.test", "password": "mushroom-lover", "display_name": "王"},
        ),
        201,
    )
    token = _json(
        client.post(
            "/api/v1/auth/token", json={"email": "wang@buyer.test", "password": "mushroom-lover"}
        ),
        200,
    )["token"]
    buyer = {"Authorization": f"Bearer {token}"}

    order = _json(
        client.post(
            "/api/v1/orders",
            headers={**buyer, "Idempotency-Key": "scenario-1"},
            json={"lines": [{"product_id": product["id"], "qty": 3}], "shipping": SHIPPING},
        ),
        201,
    )
    assert order["total_fen"] == 3 * 3990
    payment = _json(client.post(f"/api/v1/orders/{order['id']}/payment", headers=buyer), 200)
    assert payment["amount_fen"] == order["total_fen"]
    _json(client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed"), 200)

    shown = _json(client.get(f"/api/v1/orders/{order['id']}", headers=buyer), 200)
    assert shown["state"] == "paid"
    assert shown["paid_at"] is not None
    assert _json(client.get(f"/api/v1/products/{product['id']}"), 200)["stock"] == 17
