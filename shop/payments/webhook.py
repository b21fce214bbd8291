"""Payment events, each handled once: Stripe's webhook (and the sandbox, which plays it).

The webhook is the only way an order becomes paid. ``handle_event`` records the event id
under a UNIQUE key in the caller's transaction, next to the state change it causes, so a
redelivered event, or the same event delivered twice at once, changes nothing the second
time. Events may arrive out of order: a failure after a success leaves the order paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shop.db import DbSession, utcnow
from shop.errors import Conflict, Malformed, NotFound, OutOfStock
from shop.i18n import _l
from shop.inputs import integer_bounds, string_length
from shop.orders import service as orders
from shop.orders.models import Order, OrderState
from shop.orders.service import PAID_STATES
from shop.payments.errors import BadSignature
from shop.payments.models import Outcome, Payment, PaymentStatus, ProcessedEvent
from shop.payments.providers import PaymentProvider
from shop.request_guard import loads_json, unstorable_field

log = logging.getLogger(__name__)

#: Stripe's own default: a signed event older than this is refused (replay protection).
WEBHOOK_TOLERANCE_S = 300


def payment_for_order(session: DbSession, order_id: int) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.order_id == order_id)).one_or_none()


@dataclass
class PaymentEvent:
    """A provider event reduced to what we act on: ``data`` is the event's ``data.object``."""

    provider: str
    event_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventResult:
    event_id: str
    outcome: str
    duplicate: bool
    order_id: int | None
    order_state: str | None


def verify_stripe_event(payload: bytes, signature: str | None, secret: str | None) -> PaymentEvent:
    """Check the Stripe-Signature of the raw body and parse it.

    Raises BadSignature (missing, wrong, or older than five minutes; no secret configured)
    and Malformed (signed, but not an event we can read: see ``_readable_event``).
    """
    if not secret:
        raise BadSignature(
            _l("Webhooks are not accepted: STRIPE_WEBHOOK_SECRET is not configured.")
        )
    if not signature:
        raise BadSignature(_l("The Stripe-Signature header is missing."))
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, WEBHOOK_TOLERANCE_S)
    except UnicodeDecodeError:
        raise BadSignature(_l("The body is not UTF-8, so it cannot be a Stripe event.")) from None
    except stripe.SignatureVerificationError as error:
        raise BadSignature(
            _l("The Stripe-Signature does not verify: %(error)s.", error=error)
        ) from None
    return _readable_event(loads_json(payload))


#: The field of ``data.object`` naming the PaymentIntent, for each event type we handle.
_INTENT_FIELD = {
    "payment_intent.succeeded": "id",
    "payment_intent.payment_failed": "id",
    "charge.refunded": "payment_intent",
}
#: The other fields handling may read, with the type each must have when present.
_OPTIONAL_FIELDS: dict[str, type] = {
    "amount": int,
    "amount_received": int,
    "amount_refunded": int,
    "currency": str,
    "client_secret": str,
    "metadata": dict,
    "last_payment_error": dict,
}


def _readable_event(body: Any) -> PaymentEvent:
    """The event, if every value handling it reads fits its type and its column. Raises
    Malformed otherwise: Stripe never sends such a body, and storing it would fail."""
    if not isinstance(body, dict):
        raise Malformed(_l("The signed body is not a Stripe event object."))
    unstorable = unstorable_field(body)
    if unstorable is not None:
        raise Malformed(_l("`%(field)s`: %(problem)s", field=unstorable[0], problem=unstorable[1]))
    event_id, event_type = body.get("id"), body.get("type")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not _fits(event_id, ProcessedEvent.event_id):
        raise Malformed(_l("The event has no usable `id`."))
    if not isinstance(event_type, str) or not _fits(event_type, ProcessedEvent.event_type):
        raise Malformed(_l("The event has no usable `type`."))
    if not isinstance(obj, dict):
        raise Malformed(_l("The event has no `data.object`."))
    if event_type not in _INTENT_FIELD:
        return PaymentEvent("stripe", event_id, event_type, obj)  # acknowledged, not read
    if not _fits(obj.get(_INTENT_FIELD[event_type]), Payment.payment_id):
        raise Malformed(
            _l(
                "`data.object.%(field)s` is not a PaymentIntent id.",
                field=_INTENT_FIELD[event_type],
            )
        )
    for name, expected in _OPTIONAL_FIELDS.items():
        value = obj.get(name)
        if value is None:
            continue
        if expected is str and not _fits(value, Payment.payment_id):
            raise Malformed(_l("`data.object.%(name)s` is not a usable string.", name=name))
        if expected is int and not _fits_fen(value):
            raise Malformed(_l("`data.object.%(name)s` is not a whole amount in fen.", name=name))
        if expected is dict and not isinstance(value, dict):
            raise Malformed(_l("`data.object.%(name)s` is not an object.", name=name))
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and not _fits(metadata.get("order_id", "-"), Payment.payment_id):
        raise Malformed(_l("`data.object.metadata.order_id` is not a usable string."))
    return PaymentEvent("stripe", event_id, event_type, obj)


def _fits(value: Any, column: Any) -> bool:
    """A non-empty string no longer than the column it is stored in (or compared with)."""
    return isinstance(value, str) and 0 < len(value) <= string_length(column)


def _fits_fen(value: Any) -> bool:
    low, high = integer_bounds(Payment.__table__.c.amount_fen.type)
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def handle_event(
    session: DbSession, event: PaymentEvent, *, provider: PaymentProvider
) -> EventResult:
    """Act on one payment event, once. A repeat (same provider and event id) changes nothing.

    Raises PaymentRefused/PaymentUnavailable only when a refund it must issue fails; the
    caller rolls back, the event stays unrecorded and the provider delivers it again.
    """
    record = ProcessedEvent(
        provider=event.provider,
        event_id=event.event_id,
        event_type=event.type,
        outcome=Outcome.IGNORED,
    )
    try:
        # On PostgreSQL a concurrent delivery of the same event waits here until the first
        # commits, then fails on the UNIQUE key: exactly one of them acts.
        with session.begin_nested():
            session.add(record)
    except IntegrityError:
        earlier = session.scalars(
            select(ProcessedEvent).where(
                ProcessedEvent.provider == event.provider,
                ProcessedEvent.event_id == event.event_id,
            )
        ).one()
        return EventResult(
            event.event_id, earlier.outcome, True, earlier.order_id, _state(session, earlier)
        )

    match event.type:
        case "payment_intent.succeeded":
            _payment_succeeded(session, record, event.data, provider)
        case "payment_intent.payment_failed":
            _payment_failed(session, record, event.data)
        case "charge.refunded":
            _charge_refunded(session, record, event.data)
        case _:
            record.detail = "event type not handled"
    session.flush()  # so the result below reads the order's new state
    return EventResult(
        event.event_id, record.outcome, False, record.order_id, _state(session, record)
    )


def _payment_succeeded(
    session: DbSession, record: ProcessedEvent, intent: dict[str, Any], provider: PaymentProvider
) -> None:
    payment_id = _str(intent.get("id"))
    record.payment_id = payment_id
    order_id = _order_id(intent.get("metadata"))
    order = _find_order(session, order_id)
    if payment_id is None or order is None:
        _note(record, Outcome.UNKNOWN_ORDER, f"no order for metadata order_id={order_id!r}")
        log.warning("payment %s succeeded for an unknown order %r", payment_id, order_id)
        return
    record.order_id = order.id

    payment = payment_for_order(session, order.id)
    other = _payment_by_id(session, payment_id) if payment is None else None
    if other is not None:
        _note(
            record,
            Outcome.PAYMENT_MISMATCH,
            f"payment {payment_id} belongs to order {other.order_id}, not {order.id}",
        )
        log.warning(
            "payment %s names order %s but is order %s's", payment_id, order.id, other.order_id
        )
        return
    if payment is None:
        # Our row was lost (e.g. the request that created the intent failed after Stripe
        # answered). The event is signed and names the order: keep its payment.
        payment = _adopt_payment(session, order, intent, provider.name, payment_id)
    elif payment.payment_id != payment_id:
        _note(
            record,
            Outcome.PAYMENT_MISMATCH,
            f"order {order.id} has payment {payment.payment_id}, the event is for {payment_id}",
        )
        log.warning("order %s: success for unknown payment %s", order.id, payment_id)
        return

    received = intent.get("amount_received", intent.get("amount"))
    currency = _str(intent.get("currency"))
    if received != order.total_fen or (currency or "").lower() != payment.currency.lower():
        _note(
            record,
            Outcome.AMOUNT_MISMATCH,
            f"received {received!r} {currency}, order total is {order.total_fen} "
            f"{payment.currency}; order left unpaid",
        )
        log.warning(
            "order %s: payment %s received %r %s but the total is %s %s; not marked paid",
            order.id,
            payment_id,
            received,
            currency,
            order.total_fen,
            payment.currency,
        )
        return

    before = order.state
    try:
        with session.begin_nested():  # a failed re-reservation leaves no partial change
            orders.mark_paid(session, order.id)
    except OutOfStock:
        reason = "order had expired and its stock is gone; payment refunded"
        provider.refund(order)
        _set_payment(session, payment, PaymentStatus.REFUNDED, reason)
        _note(record, Outcome.REFUNDED_OUT_OF_STOCK, reason)
        log.warning("order %s: %s (%s)", order.id, reason, payment_id)
        return
    except Conflict:
        session.refresh(order)
        if order.state == OrderState.CANCELLED:
            reason = "order was cancelled before the payment arrived; payment refunded"
            provider.refund(order)
            _set_payment(session, payment, PaymentStatus.REFUNDED, reason)
            _note(record, Outcome.REFUNDED_CANCELLED, reason)
            log.warning("order %s: %s (%s)", order.id, reason, payment_id)
        else:
            _note(record, Outcome.IGNORED, f"order is {order.state}")
        return

    _set_payment(session, payment, PaymentStatus.SUCCEEDED, None)
    if before in PAID_STATES:
        _note(record, Outcome.ALREADY_PAID, f"order was already {before}")
    elif before == OrderState.EXPIRED:
        _note(record, Outcome.PAID, "order had expired; stock reserved again")
    else:
        _note(record, Outcome.PAID, None)


def _payment_failed(session: DbSession, record: ProcessedEvent, intent: dict[str, Any]) -> None:
    payment_id = _str(intent.get("id"))
    record.payment_id = payment_id
    payment = _payment_by_id(session, payment_id)
    if payment is None:
        _note(record, Outcome.UNKNOWN_ORDER, f"no payment {payment_id!r}")
        return
    record.order_id = payment.order_id
    error = intent.get("last_payment_error")
    message = error.get("message") if isinstance(error, dict) else None
    # Conditional: a failure that arrives after the success (events come out of order)
    # must not overwrite it, even when both are handled at the same moment.
    session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status == PaymentStatus.REQUIRES_PAYMENT)
        .values(status=PaymentStatus.FAILED, status_note=_clip(message), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.expire(payment)
    _note(record, Outcome.FAILURE_RECORDED, _clip(message))


def _charge_refunded(session: DbSession, record: ProcessedEvent, charge: dict[str, Any]) -> None:
    payment_id = _str(charge.get("payment_intent"))
    record.payment_id = payment_id
    payment = _payment_by_id(session, payment_id)
    if payment is None:
        _note(record, Outcome.UNKNOWN_ORDER, f"no payment {payment_id!r}")
        return
    record.order_id = payment.order_id
    amount, refunded = charge.get("amount"), charge.get("amount_refunded")
    full = charge.get("refunded") is True or (
        isinstance(amount, int) and isinstance(refunded, int) and refunded >= amount > 0
    )
    if not full:
        _note(record, Outcome.REFUND_RECORDED, f"partial refund of {refunded!r} fen; order kept")
        log.warning("order %s: partial refund %r of %r", payment.order_id, refunded, amount)
        return
    order = orders.get_order(session, payment.order_id)
    if order.state != OrderState.PAID:
        if order.state in PAID_STATES:
            log.warning("order %s refunded at Stripe while %s", order.id, order.state)
        _set_payment(session, payment, PaymentStatus.REFUNDED, None)
        _note(record, Outcome.REFUND_RECORDED, f"order is {order.state}")
        return
    try:
        with session.begin_nested():
            # The money is already back (refunded from the Stripe dashboard): no new refund.
            orders.cancel_order(session, order.id, refund=_money_already_returned)
    except Conflict as error:
        _note(record, Outcome.REFUND_RECORDED, error.detail)
        return
    _set_payment(session, payment, PaymentStatus.REFUNDED, "refunded at Stripe")
    _note(record, Outcome.ORDER_REFUNDED, "refunded at Stripe; order refunded, stock returned")


# --- helpers -----------------------------------------------------------------------------


def _money_already_returned(order: Order) -> None:
    """The refund callback for a refund that already happened at the provider."""


def _adopt_payment(
    session: DbSession, order: Order, intent: dict[str, Any], provider: str, payment_id: str
) -> Payment:
    payment = Payment(
        order_id=order.id,
        provider=provider,
        payment_id=payment_id,
        client_secret=_str(intent.get("client_secret")) or "",
        amount_fen=intent["amount"] if isinstance(intent.get("amount"), int) else order.total_fen,
        currency=(_str(intent.get("currency")) or "").lower()[:3],
    )
    session.add(payment)
    session.flush()  # UNIQUE(order_id) and UNIQUE(payment_id) are checked here, inside the event
    return payment


def _set_payment(session: DbSession, payment: Payment, status: str, note: str | None) -> None:
    payment.status = status
    payment.status_note = _clip(note)


def _note(record: ProcessedEvent, outcome: Outcome, detail: str | None) -> None:
    record.outcome = outcome
    record.detail = _clip(detail)


def _payment_by_id(session: DbSession, payment_id: str | None) -> Payment | None:
    if payment_id is None:
        return None
    return session.scalars(select(Payment).where(Payment.payment_id == payment_id)).one_or_none()


def _find_order(session: DbSession, order_id: int | None) -> Order | None:
    if order_id is None:
        return None
    try:
        return orders.get_order(session, order_id)
    except NotFound:
        return None


def _order_id(metadata: Any) -> int | None:
    raw = metadata.get("order_id") if isinstance(metadata, dict) else None
    # isascii: "²" is a digit to isdigit() but not to int(); ten digits: no huge int()
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        return int(raw) if 0 < int(raw) < 2**31 else None
    return None


def _state(session: DbSession, record: ProcessedEvent) -> str | None:
    if record.order_id is None:
        return None
    order = session.get(Order, record.order_id)
    return str(order.state) if order is not None else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _clip(text: str | None) -> str | None:
    return text[:500] if text else None
