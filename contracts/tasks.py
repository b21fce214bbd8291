"""Celery tasks of the contracts package: sending a payout.

``contracts.send_payout`` is sent by the payout run after its transaction commits,
one per payout id. It is idempotent: running it twice, or on a payout already paid,
does nothing more (the claim is a conditional UPDATE; Stripe deduplicates the key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from celery import shared_task
from flask import current_app

from contracts.models import Payout
from contracts.payouts import service
from contracts.payouts.providers import (
    PayoutProvider,
    TransferRefused,
    TransferUnreachable,
    payout_provider,
)
from shop.celery_app import MAX_COUNTDOWN_S
from shop.core.transaction import unit_of_work
from shop.db import utcnow

log = logging.getLogger(__name__)

MAX_RETRIES = 6


@dataclass(frozen=True)
class SendOutcome:
    payout_id: int
    state: str
    unreachable: bool = False  #: the provider could not be reached: worth a retry soon


def sending_lease() -> timedelta:
    return timedelta(seconds=current_app.config["PAYOUT_SENDING_LEASE_S"])


def send_payout_now(payout_id: int, provider: PayoutProvider | None = None) -> SendOutcome:
    """Claim, send and record one payout, each step in its own transaction.

    This function owns its transactions (unlike a service): the claim must be committed
    before the provider is called, and the outcome committed after, so that a crash in
    between leaves a ``sending`` payout that is retried with the same idempotency key
    rather than a payout that could be sent twice.
    """
    provider = provider or payout_provider(current_app.config)
    with unit_of_work() as session:
        request = service.claim_payout(
            session,
            payout_id,
            currency=current_app.config["CURRENCY"],
            provider=provider.name,
            now=utcnow(),
            sending_lease=sending_lease(),
        )
    if request is None:
        payout = session.get(Payout, payout_id)
        return SendOutcome(payout_id, payout.state if payout else "missing")

    unreachable = False
    with unit_of_work(session):
        try:
            transfer_id = provider.transfer(request)
        except TransferRefused as error:
            log.warning("payout %s refused: %s", payout_id, error.message)
            service.record_failed(session, payout_id, message=error.message)
        except TransferUnreachable as error:
            log.warning("payout %s: provider unreachable: %s", payout_id, error)
            unreachable = True
            service.record_failed(
                session, payout_id, message=f"Payment provider unreachable, will retry: {error}"
            )
        else:
            service.record_paid(session, payout_id, transfer_id=transfer_id, now=utcnow())
    payout = session.get(Payout, payout_id)
    assert payout is not None
    session.refresh(payout)
    return SendOutcome(payout_id, payout.state, unreachable)


@shared_task(
    name="contracts.send_payout",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def send_payout(self: object, payout_id: int) -> str:
    """Send one payout (idempotent). Network failures retry with exponential backoff, with
    the same idempotency key; a refusal stays ``failed`` until the next payout run. The
    delay stays under the broker's visibility timeout (``MAX_COUNTDOWN_S``)."""
    outcome = send_payout_now(payout_id)
    request = self.request  # type: ignore[attr-defined]
    if outcome.unreachable and not request.is_eager and request.retries < MAX_RETRIES:
        raise self.retry(countdown=min(MAX_COUNTDOWN_S, 30 * 2**request.retries))  # type: ignore[attr-defined]
    return outcome.state
