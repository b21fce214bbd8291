"""Payments: create an order's payment once; the sandbox's stand-in for Stripe's webhook.

Handling the provider's events (the only way an order becomes paid) is in ``webhook.py``.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shop.accounts.models import Principal, Role
from shop.db import DbSession, utcnow
from shop.errors import Conflict, Forbidden, NotFound
from shop.i18n import _l
from shop.orders import service as orders
from shop.orders.models import OrderState
from shop.payments.models import Payment
from shop.payments.providers import PaymentProvider
from shop.payments.webhook import EventResult, PaymentEvent, handle_event, payment_for_order

__all__ = ["payment_for_order", "sandbox_succeed", "start_payment"]

#: the shape of the ids ``SandboxProvider`` hands out
SANDBOX_ID = re.compile(r"sbx_pi_[0-9a-f]{24}")


def start_payment(
    session: DbSession, order_id: int, *, user: Principal, provider: PaymentProvider
) -> Payment:
    """The order's payment, created at the provider the first time and returned as is after.

    Raises NotFound (not the caller's order; Forbidden for an admin, who may see it),
    Conflict (the order is not waiting for payment), PaymentRefused/PaymentUnavailable.
    """
    order = orders.get_order(session, order_id)
    if order.buyer_id != user.id:
        if user.has_role(Role.ADMIN):
            raise Forbidden(_l("Only the order's buyer can pay for it."))
        raise NotFound(_l("No order %(order_id)s.", order_id=order_id))
    if order.state != OrderState.PENDING_PAYMENT:
        raise Conflict(
            _l(
                "Order %(order_id)s is %(state)s; only an order waiting for payment can be paid.",
                order_id=order_id,
                state=order.state,
            ),
            state=str(order.state),
        )
    existing = payment_for_order(session, order_id)
    if existing is not None:
        return existing
    if order.expires_at <= utcnow():
        raise Conflict(
            _l(
                "Order %(order_id)s was not paid in time and is expiring; place it again.",
                order_id=order_id,
            ),
            state=str(order.state),
        )

    # Two clicks at once both get here; the provider's idempotency key (order-{id}) gives
    # both the same PaymentIntent, and UNIQUE(order_id) lets only one row in.
    info = provider.create_payment(order)
    payment = Payment(
        order_id=order.id,
        provider=info.provider,
        payment_id=info.payment_id,
        client_secret=info.client_secret,
        amount_fen=info.amount_fen,
        currency=info.currency,
    )
    try:
        with session.begin_nested():
            session.add(payment)
    except IntegrityError:
        winner = payment_for_order(session, order_id)
        if winner is None:  # pragma: no cover - the conflicting row must exist
            raise
        return winner
    return payment


def sandbox_succeed(
    session: DbSession, payment_id: str, *, provider: PaymentProvider
) -> EventResult:
    """The sandbox's stand-in for Stripe's ``payment_intent.succeeded`` webhook.

    Raises NotFound (no sandbox payment with that id). A repeat is the same event again.
    """
    payment = None
    if SANDBOX_ID.fullmatch(payment_id):  # anything else is no id of ours (and may hold a NUL)
        payment = session.scalars(
            select(Payment).where(Payment.payment_id == payment_id, Payment.provider == "sandbox")
        ).one_or_none()
    if payment is None:
        raise NotFound(_l("No sandbox payment %(payment_id)s.", payment_id=payment_id))
    event = PaymentEvent(
        provider="sandbox",
        event_id=f"sandbox-succeeded-{payment.payment_id}",
        type="payment_intent.succeeded",
        data={
            "id": payment.payment_id,
            "object": "payment_intent",
            "amount": payment.amount_fen,
            "amount_received": payment.amount_fen,
            "currency": payment.currency,
            "status": "succeeded",
            "metadata": {"order_id": str(payment.order_id)},
        },
    )
    return handle_event(session, event, provider=provider)
