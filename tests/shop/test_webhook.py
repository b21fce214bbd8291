"""The Stripe webhook: signatures with Stripe's real scheme, each event once, events out of
order, wrong amounts, and payments that arrive after the order expired or was cancelled."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shop.db import db, utcnow
from shop.orders import service as orders
from shop.payments.models import Outcome, PaymentStatus, ProcessedEvent
from tests.shop import payments_support
from tests.shop.payments_support import (
    WEBHOOK,
    deliver,
    events_for,
    intent_event,
    order_state,
    pay_at_stripe,
    pay_for,
    payment_row,
    posts,
    product_stock,
    stripe_client,
    stripe_unreachable,
    succeeded_intent,
)
from tests.support.stripe import SECRET_KEY, WEBHOOK_SECRET, sign_webhook

stripe_on = payments_support.stripe_on
paid_events = payments_support.paid_events


shop = payments_support.shop


@pytest.fixture
def paying(client, shop, stripe_on):
    """The order with its PaymentIntent created (not yet paid): (order, payment, product)."""
    _, headers, product, order = shop
    payment = pay_for(client, headers, order.id).json
    return order, payment, product


def processed_count() -> int:
    return db.session.scalar(select(func.count()).select_from(ProcessedEvent))


def expire(order_id: int) -> None:
    """The expiry task's work, run as if its deadline had passed (the clock moved on)."""
    expired = orders.expire_unpaid(db.session, now=utcnow() + timedelta(seconds=901))
    db.session.commit()
    assert order_id in expired


# --- signatures --------------------------------------------------------------------------


def test_an_event_signed_with_another_secret_is_refused(client, paying):
    order, payment, _ = paying
    response = deliver(
        client, intent_event(succeeded_intent(payment, order.id)), secret="whsec_not_ours"
    )

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["type"] == "signature"
    assert order_state(order.id) == "pending_payment"
    assert processed_count() == 0


def test_an_event_whose_body_was_changed_after_signing_is_refused(client, paying):
    order, payment, _ = paying
    body, headers = sign_webhook(intent_event(succeeded_intent(payment, order.id)))
    tampered = body.replace(b'"amount_received": 7980', b'"amount_received": 7981')
    assert tampered != body

    response = client.post(WEBHOOK, data=tampered, headers=headers)

    assert response.status_code == 400
    assert response.json["type"] == "signature"
    assert order_state(order.id) == "pending_payment"


def test_an_event_without_a_signature_is_refused(client, paying):
    order, payment, _ = paying
    body = json.dumps(intent_event(succeeded_intent(payment, order.id)))

    response = client.post(WEBHOOK, data=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json["type"] == "signature"
    assert "missing" in response.json["detail"]
    assert order_state(order.id) == "pending_payment"


@pytest.mark.parametrize("header", ["garbage", "t=abc,v1=00", "v1=00", "t=1", "t=1,v0=00"])
def test_a_malformed_signature_header_is_refused(client, paying, header):
    order, payment, _ = paying
    body, _ = sign_webhook(intent_event(succeeded_intent(payment, order.id)))

    response = client.post(WEBHOOK, data=body, headers={"Stripe-Signature": header})

    assert response.status_code == 400
    assert response.json["type"] == "signature"


def test_a_correctly_signed_but_stale_event_is_refused_as_a_replay(client, paying):
    order, payment, _ = paying
    event = intent_event(succeeded_intent(payment, order.id))

    stale = deliver(client, event, timestamp=int(time.time()) - 301)
    recent = deliver(client, event, timestamp=int(time.time()) - 280)

    assert stale.status_code == 400
    assert stale.json["type"] == "signature"
    assert "tolerance" in stale.json["detail"]
    assert recent.status_code == 200
    assert order_state(order.id) == "paid"


def test_without_a_configured_secret_no_event_is_believed(client, shop):
    _, headers, _, order = shop
    payment = pay_for(client, headers, order.id).json  # sandbox, no webhook secret

    response = deliver(client, intent_event(succeeded_intent(payment, order.id)))

    assert response.status_code == 400
    assert "STRIPE_WEBHOOK_SECRET" in response.json["detail"]
    assert order_state(order.id) == "pending_payment"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"type": "payment_intent.succeeded"}',
        '{"id": "evt_1"}',
        '{"id": "evt_\\u0000", "type": "charge.refunded", "data": {"object": {}}}',
    ],
)
def test_a_signed_body_that_is_not_an_event_is_a_400(client, stripe_on, body):
    response = deliver(client, body)

    assert response.status_code == 400
    assert response.json["type"] == "malformed"
    assert processed_count() == 0


def _event(type_: str, obj: object) -> str:
    return json.dumps({"id": "evt_probe", "type": type_, "data": {"object": obj}})


SUCCEEDED = "payment_intent.succeeded"
DEEP = '{"id": "evt_deep", "type": "x", "data": ' + '{"a":' * 100_000 + "1" + "}" * 100_001


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        '{"id": 12345, "type": "charge.refunded", "data": {"object": {}}}',
        '{"id": 1e400, "type": "charge.refunded", "data": {"object": {}}}',
        json.dumps({"id": "evt_" + "x" * 10_000, "type": SUCCEEDED, "data": {"object": {}}}),
        json.dumps({"id": "evt_1", "type": "t" * 1_000, "data": {"object": {}}}),
        json.dumps({"id": "evt_1", "type": SUCCEEDED, "data": {}}),
        json.dumps({"id": "evt_1", "type": SUCCEEDED, "data": {"object": []}}),
        _event(SUCCEEDED, {}),
        _event(SUCCEEDED, {"id": 123}),
        _event(SUCCEEDED, {"id": "pi_" + "x" * 1_000}),
        _event(SUCCEEDED, {"id": "pi_1", "amount_received": 10**30}),
        _event(SUCCEEDED, {"id": "pi_1", "amount": "7980"}),
        _event(SUCCEEDED, {"id": "pi_1", "amount": True}),
        _event(SUCCEEDED, {"id": "pi_1", "client_secret": "s" * 1_000}),
        _event(SUCCEEDED, {"id": "pi_1", "metadata": "order 1"}),
        _event(SUCCEEDED, {"id": "pi_1", "metadata": {"order_id": 1}}),
        _event(SUCCEEDED, {"id": "pi_1", "metadata": {"order_id": "9" * 5_000}}),
        '{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1", '
        '"amount": ' + "9" * 5_000 + "}}}",
        '{"id": "evt_1", "type": "payment_intent.succeeded", '
        '"data": {"object": {"id": "pi_\\ud800"}}}',
        _event("payment_intent.payment_failed", {"id": ["pi_1"]}),
        _event("payment_intent.payment_failed", {"id": "pi_1", "last_payment_error": "declined"}),
        _event("charge.refunded", {"payment_intent": None}),
        _event("charge.refunded", {"payment_intent": "pi_1", "amount_refunded": -(2**64)}),
    ],
    ids=lambda body: body[:60],
)
def test_a_signed_event_the_webhook_cannot_read_is_a_400_that_records_nothing(
    client, stripe_on, caplog, body
):
    response = deliver(client, body)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "malformed"
    assert processed_count() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_signed_deep_body_sent_as_plain_text_is_refused_by_the_webhook_itself(client, stripe_on):
    body, headers = sign_webhook(DEEP)
    response = client.post(WEBHOOK, data=body, headers={**headers, "Content-Type": "text/plain"})

    assert response.status_code == 400
    assert response.json["type"] == "malformed"


def test_a_deep_body_without_a_signature_is_still_a_400(client, stripe_on):
    response = client.post(WEBHOOK, data=DEEP, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_an_order_id_in_metadata_that_is_a_unicode_digit_is_an_unknown_order(client, paying):
    order, payment, _ = paying
    intent = succeeded_intent(payment, order.id, metadata={"order_id": "²"})
    response = deliver(client, intent_event(intent))

    assert response.status_code == 200
    assert response.json["outcome"] == "unknown_order"
    assert order_state(order.id) == "pending_payment"


def test_a_body_that_is_not_utf8_is_refused(client, stripe_on):
    response = client.post(WEBHOOK, data=b"\xff\xfe", headers={"Stripe-Signature": "t=1,v1=0"})
    assert response.status_code == 400
    assert response.json["type"] == "signature"


# --- each event once ---------------------------------------------------------------------


def test_a_redelivered_event_changes_nothing_the_second_time(client, paying, paid_events):
    order, payment, product = paying
    event = intent_event(succeeded_intent(payment, order.id))

    first = deliver(client, event)
    second = deliver(client, event)

    assert first.json["duplicate"] is False
    assert first.json["outcome"] == Outcome.PAID
    assert second.status_code == 200
    assert second.json["duplicate"] is True
    assert second.json["outcome"] == Outcome.PAID  # what the first delivery did
    assert second.json["order_state"] == "paid"
    assert paid_events.calls == [{"order_id": order.id}]
    assert len(events_for(order.id)) == 1
    assert product_stock(product.id) == 8


def test_a_redelivered_success_for_a_cancelled_order_refunds_only_once(client, shop, stripe_on):
    """The buyer cancelled while paying; the money arrives anyway and goes back. Stripe
    sends the event again: no second refund request."""
    _, headers, product, order = shop
    payment = pay_for(client, headers, order.id).json
    intent = pay_at_stripe(stripe_on, payment["payment_id"])
    assert client.post(f"/api/v1/orders/{order.id}/cancel", headers=headers).json["state"] == (
        "cancelled"
    )
    event = intent_event(intent)

    first = deliver(client, event)
    second = deliver(client, event)

    assert first.json["outcome"] == Outcome.REFUNDED_CANCELLED
    assert second.json["duplicate"] is True
    assert [r["idempotency_key"] for r in posts(stripe_on, "/v1/refunds")] == [f"refund-{order.id}"]
    charge = stripe_client(stripe_on).v1.charges.retrieve(intent["latest_charge"]["id"])
    assert charge.refunded is True
    assert order_state(order.id) == "cancelled"
    assert product_stock(product.id) == 10
    assert payment_row(order.id).status == PaymentStatus.REFUNDED


def test_the_same_event_id_from_the_sandbox_and_stripe_are_different_events(
    app, client, shop, place, localstripe, monkeypatch
):
    """Event ids are unique per provider, so a sandbox id can never block a Stripe one."""
    buyer, headers, product, order = shop
    sandbox = pay_for(client, headers, order.id).json
    assert client.post(f"/api/v1/payments/sandbox/{sandbox['payment_id']}/succeed").json[
        "outcome"
    ] == (Outcome.PAID)
    (recorded,) = events_for(order.id)
    event_id = f"sandbox-succeeded-{sandbox['payment_id']}"
    assert (recorded.provider, recorded.event_id) == ("sandbox", event_id)

    # Stripe is switched on, and an event of its own carries that very id.
    for key, value in {
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_API_BASE": localstripe.base_url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }.items():
        monkeypatch.setitem(app.config, key, value)
    second = place(buyer, [{"product_id": product.id, "qty": 1}])
    payment = pay_for(client, headers, second.id).json
    event = intent_event(succeeded_intent(payment, second.id))
    event["id"] = event_id
    delivered = deliver(client, event)

    assert delivered.status_code == 200
    assert delivered.json["duplicate"] is False
    assert delivered.json["outcome"] == Outcome.PAID
    assert order_state(second.id) == "paid"
    assert [(e.provider, e.event_id) for e in events_for(second.id)] == [("stripe", event_id)]


# --- out of order ------------------------------------------------------------------------


def failed_intent(payment, order_id):
    return succeeded_intent(
        payment,
        order_id,
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )


def test_a_failure_that_arrives_after_the_success_leaves_the_order_paid(client, paying):
    order, payment, _ = paying
    deliver(client, intent_event(succeeded_intent(payment, order.id)))

    late = deliver(
        client, intent_event(failed_intent(payment, order.id), "payment_intent.payment_failed")
    )

    assert late.status_code == 200
    assert late.json["outcome"] == Outcome.FAILURE_RECORDED
    assert order_state(order.id) == "paid"
    assert payment_row(order.id).status == PaymentStatus.SUCCEEDED


def test_a_failure_then_a_success_pays_the_order(client, paying):
    order, payment, _ = paying
    failed = deliver(
        client, intent_event(failed_intent(payment, order.id), "payment_intent.payment_failed")
    )
    assert order_state(order.id) == "pending_payment"
    assert payment_row(order.id).status == PaymentStatus.FAILED
    assert payment_row(order.id).status_note == "Your card was declined."
    assert failed.json["order_state"] == "pending_payment"

    deliver(client, intent_event(succeeded_intent(payment, order.id)))

    assert order_state(order.id) == "paid"
    assert payment_row(order.id).status == PaymentStatus.SUCCEEDED


def test_a_refund_event_that_arrives_before_the_success_does_not_refund_an_unpaid_order(
    client, paying
):
    order, payment, _ = paying
    charge = {
        "id": "ch_early",
        "object": "charge",
        "payment_intent": payment["payment_id"],
        "amount": 7980,
        "amount_refunded": 7980,
        "refunded": True,
    }

    response = deliver(client, intent_event(charge, "charge.refunded"))

    assert response.json["outcome"] == Outcome.REFUND_RECORDED
    assert order_state(order.id) == "pending_payment"


# --- amounts and identities --------------------------------------------------------------


def test_an_amount_that_differs_from_the_total_leaves_the_order_unpaid_and_is_logged(
    client, paying, caplog
):
    order, payment, _ = paying
    caplog.set_level(logging.WARNING, logger="shop.payments")

    response = deliver(client, intent_event(succeeded_intent(payment, order.id, amount_received=1)))

    assert response.status_code == 200
    assert response.json["outcome"] == Outcome.AMOUNT_MISMATCH
    assert order_state(order.id) == "pending_payment"
    assert "received 1 cny but the total is 7980 cny" in caplog.text
    (recorded,) = events_for(order.id)
    assert "order left unpaid" in recorded.detail


def test_a_payment_in_another_currency_leaves_the_order_unpaid(client, paying):
    order, payment, _ = paying
    response = deliver(client, intent_event(succeeded_intent(payment, order.id, currency="usd")))

    assert response.json["outcome"] == Outcome.AMOUNT_MISMATCH
    assert order_state(order.id) == "pending_payment"


def test_a_success_naming_another_payment_for_the_order_does_not_pay_it(client, paying):
    order, payment, _ = paying
    response = deliver(
        client, intent_event(succeeded_intent(payment, order.id, id="pi_somebody_else"))
    )

    assert response.json["outcome"] == Outcome.PAYMENT_MISMATCH
    assert order_state(order.id) == "pending_payment"


def test_a_success_for_an_order_we_do_not_have_is_acknowledged_and_recorded(client, paying):
    order, payment, _ = paying
    for metadata in ({"order_id": "999999"}, {}, {"order_id": "abc"}, None):
        response = deliver(
            client, intent_event(succeeded_intent(payment, order.id, metadata=metadata))
        )
        assert response.status_code == 200
        assert response.json["outcome"] == Outcome.UNKNOWN_ORDER
    assert order_state(order.id) == "pending_payment"


def test_an_event_type_we_do_not_handle_is_acknowledged_and_ignored(client, paying):
    order, payment, _ = paying
    response = deliver(
        client, intent_event(succeeded_intent(payment, order.id), "customer.created")
    )

    assert response.status_code == 200
    assert response.json["outcome"] == Outcome.IGNORED
    assert order_state(order.id) == "pending_payment"


def test_a_success_whose_payment_row_was_lost_is_kept_and_pays_the_order(client, paying):
    order, payment, _ = paying
    db.session.delete(payment_row(order.id))
    db.session.commit()

    response = deliver(client, intent_event(succeeded_intent(payment, order.id)))

    assert response.json["outcome"] == Outcome.PAID
    kept = payment_row(order.id)
    assert (kept.payment_id, kept.amount_fen, kept.status) == (
        payment["payment_id"],
        7980,
        PaymentStatus.SUCCEEDED,
    )


# --- refunds made at Stripe --------------------------------------------------------------


def test_a_full_refund_from_the_stripe_dashboard_refunds_the_order_without_a_second_refund(
    client, paying, stripe_on
):
    order, payment, product = paying
    intent = pay_at_stripe(stripe_on, payment["payment_id"])
    deliver(client, intent_event(intent))
    dashboard = stripe_client(stripe_on)
    dashboard.v1.refunds.create(params={"payment_intent": payment["payment_id"]})
    charge = dashboard.v1.charges.retrieve(intent["latest_charge"]["id"]).to_dict()
    refunds_before = len(posts(stripe_on, "/v1/refunds"))

    response = deliver(client, intent_event(charge, "charge.refunded"))

    assert response.json["outcome"] == Outcome.ORDER_REFUNDED
    assert order_state(order.id) == "refunded"
    assert product_stock(product.id) == 10
    assert payment_row(order.id).status == PaymentStatus.REFUNDED
    assert len(posts(stripe_on, "/v1/refunds")) == refunds_before  # no refund of a refund


def test_a_partial_refund_at_stripe_keeps_the_order_paid(client, paying):
    order, payment, _ = paying
    deliver(client, intent_event(succeeded_intent(payment, order.id)))
    charge = {
        "id": "ch_partial",
        "object": "charge",
        "payment_intent": payment["payment_id"],
        "amount": 7980,
        "amount_refunded": 3990,
        "refunded": False,
    }

    response = deliver(client, intent_event(charge, "charge.refunded"))

    assert response.json["outcome"] == Outcome.REFUND_RECORDED
    assert order_state(order.id) == "paid"


# --- payments that arrive late -----------------------------------------------------------


def test_a_success_for_an_expired_order_reserves_its_stock_again(client, paying, paid_events):
    order, payment, product = paying
    expire(order.id)
    assert product_stock(product.id) == 10

    response = deliver(client, intent_event(succeeded_intent(payment, order.id)))

    assert response.json["outcome"] == Outcome.PAID
    assert order_state(order.id) == "paid"
    assert product_stock(product.id) == 8
    assert paid_events.calls == [{"order_id": order.id}]
    (recorded,) = events_for(order.id)
    assert recorded.detail == "order had expired; stock reserved again"


def test_a_success_for_an_expired_order_whose_stock_is_gone_is_refunded_and_stays_expired(
    client, auth, make_product, place, stripe_on, paid_events, caplog
):
    caplog.set_level(logging.WARNING, logger="shop.payments")
    buyer, headers = auth("buyer")
    product = make_product(stock=2, price_fen=3990)
    order = place(buyer, [{"product_id": product.id, "qty": 2}])
    payment = pay_for(client, headers, order.id).json
    intent = pay_at_stripe(stripe_on, payment["payment_id"])
    expire(order.id)
    other, _ = auth("buyer")
    place(other, [{"product_id": product.id, "qty": 2}])  # the last two bags sell again
    assert product_stock(product.id) == 0

    response = deliver(client, intent_event(intent))

    assert response.status_code == 200
    assert response.json["outcome"] == Outcome.REFUNDED_OUT_OF_STOCK
    assert order_state(order.id) == "expired"
    assert product_stock(product.id) == 0  # nothing oversold, nothing half-reserved
    assert paid_events.calls == []
    refunds = posts(stripe_on, "/v1/refunds")
    assert [r["idempotency_key"] for r in refunds] == [f"refund-{order.id}"]
    charge = stripe_client(stripe_on).v1.charges.retrieve(intent["latest_charge"]["id"])
    assert charge.refunded is True
    recorded = payment_row(order.id)
    assert recorded.status == PaymentStatus.REFUNDED
    assert recorded.status_note == "order had expired and its stock is gone; payment refunded"
    assert "stock is gone" in caplog.text


def test_a_two_line_expired_order_with_one_line_gone_reserves_neither(
    client, auth, make_product, place, stripe_on
):
    buyer, headers = auth("buyer")
    plenty = make_product(stock=10)
    scarce = make_product(stock=1)
    order = place(buyer, [{"product_id": plenty.id, "qty": 3}, {"product_id": scarce.id, "qty": 1}])
    payment = pay_for(client, headers, order.id).json
    intent = pay_at_stripe(stripe_on, payment["payment_id"])
    expire(order.id)
    other, _ = auth("buyer")
    place(other, [{"product_id": scarce.id, "qty": 1}])

    response = deliver(client, intent_event(intent))

    assert response.json["outcome"] == Outcome.REFUNDED_OUT_OF_STOCK
    assert product_stock(plenty.id) == 10
    assert product_stock(scarce.id) == 0


def test_a_late_payment_for_a_flash_order_takes_the_units_from_the_listing_again(
    client, auth, make_product, make_live_session, place, stripe_on
):
    from shop.live.models import LiveListing

    buyer, headers = auth("buyer")
    product = make_product(stock=20)
    listing = make_live_session([(product, 2990, 5, None)]).listings[0]
    order = place(buyer, [{"listing_id": listing.id, "qty": 2}])
    assert order.total_fen == 5980
    payment = pay_for(client, headers, order.id).json
    expire(order.id)
    db.session.expire_all()
    assert db.session.get(LiveListing, listing.id).remaining == 5

    response = deliver(client, intent_event(succeeded_intent(payment, order.id)))

    assert response.json["outcome"] == Outcome.PAID
    db.session.expire_all()
    assert db.session.get(LiveListing, listing.id).remaining == 3
    assert product_stock(product.id) == 15


def test_when_the_refund_for_a_gone_order_fails_the_event_is_not_recorded_and_comes_again(
    app, client, auth, make_product, place, stripe_on
):
    """Stripe is unreachable for the refund: 502, nothing recorded, so Stripe's retry
    of the same event does the refund later (same idempotency key)."""
    buyer, headers = auth("buyer")
    product = make_product(stock=1)
    order = place(buyer, [{"product_id": product.id, "qty": 1}])
    payment = pay_for(client, headers, order.id).json
    intent = pay_at_stripe(stripe_on, payment["payment_id"])
    expire(order.id)
    place(auth("buyer")[0], [{"product_id": product.id, "qty": 1}])
    event = intent_event(intent)

    stripe_unreachable(app)
    down = deliver(client, event)
    app.config.update(STRIPE_API_BASE=stripe_on.base_url, STRIPE_TIMEOUT_S=20)
    db.session.rollback()  # what the end of a failed request does (see test_payments)

    assert down.status_code == 502
    assert down.json["type"] == "payment"
    assert processed_count() == 0

    retried = deliver(client, event)

    assert retried.json["outcome"] == Outcome.REFUNDED_OUT_OF_STOCK
    assert order_state(order.id) == "expired"
