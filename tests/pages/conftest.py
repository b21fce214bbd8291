"""Fixtures for the page tests: signing in through the login form (with its CSRF token),
and the little worlds each page shows — a workshop with a paid order to pack, a farmer
with a contract, deliveries and a payout, a streamer's live session with listings.

The builders go through the packages' own services, never around them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from contracts import prices
from contracts import service as contracts
from contracts.payouts import service as payouts
from contracts.tasks import sending_lease
from fulfillment import service as fulfillment
from shop.db import db, utcnow
from shop.live import service as live
from shop.orders import service as orders
from tests.conftest import TEST_PASSWORD

SHIPPING = {
    "name": "王女士 Ms Wang",
    "phone": "+86 138 0000 0000",
    "address": "浙江省丽水市庆元县 松源街道 1 号",
    "region": "浙江 Zhejiang",
}

_keys = itertools.count(1)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class Pages:
    """A test client that signs in through ``/login`` and posts forms with their token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def login(self, user: Any, password: str = TEST_PASSWORD) -> Any:
        token = csrf_token(self.client.get("/login").get_data(as_text=True))
        return self.client.post(
            "/login", data={"email": user.email, "password": password, "csrf_token": token}
        )

    def token(self, path: str = "/login") -> str:
        return csrf_token(self.client.get(path).get_data(as_text=True))

    def submit(self, page: str, action: str, data: dict[str, Any] | None = None) -> Any:
        """POST ``data`` to ``action`` with the CSRF token of the form on ``page``."""
        body = {"csrf_token": self.token(page), **(data or {})}
        return self.client.post(action, data=body)


@pytest.fixture
def pages(client: FlaskClient) -> Pages:
    return Pages(client)


@pytest.fixture
def signed_in(pages: Pages, make_user: Callable[..., Any]) -> Callable[..., tuple[Any, Pages]]:
    """``signed_in("villager")`` → (user, pages) for a new user with those roles."""

    def make(*roles: str) -> tuple[Any, Pages]:
        user = make_user(*roles)
        response = pages.login(user)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user, pages

    return make


# ---------------------------------------------------------------------------- worlds


def make_workshop_with(villager: Any, name: str = "香信谷共富工坊 Xiangxingu") -> Any:
    workshop = fulfillment.create_workshop(db.session, name=name, village="竹口镇 Zhukou")
    fulfillment.add_member(db.session, workshop.id, user_id=villager.id, lead=False)
    db.session.commit()
    return workshop


def make_paid_order(buyer: Any, product: Any, qty: int = 2) -> int:
    """A paid order (its packing task is made by the real order.paid → task path)."""
    order, _ = orders.place_order(
        db.session,
        buyer_id=buyer.id,
        lines=[{"product_id": product.id, "qty": qty}],
        shipping=SHIPPING,
        idempotency_key=f"pages-{next(_keys)}",
        payment_timeout_s=900,
    )
    db.session.commit()
    orders.mark_paid(db.session, order.id)
    db.session.commit()
    return int(order.id)


def make_farmer_statement(farmer: Any, product: Any) -> dict[str, Any]:
    """An active contract at market + 12 % with two deliveries; the first is in a payout
    run (pending: the farmer has no payout account)."""
    today = utcnow().date()
    start = today - timedelta(days=30)
    prices.add_market_price(
        db.session,
        product_id=product.id,
        grade="standard",
        price_fen_per_kg=1745,
        effective_on=start,
        source="庆元香菇市场 Qingyuan market",
        created_by=None,
    )
    contract = contracts.create_contract(
        db.session,
        farmer_id=farmer.id,
        product_id=product.id,
        grade="standard",
        premium_bp=1200,
        committed_kg=2000,
        starts_on=start,
        ends_on=today + timedelta(days=300),
        created_by=None,
    )
    contracts.accept_contract(db.session, contract.id, farmer)
    first = contracts.record_delivery(
        db.session,
        contract.id,
        delivered_on=start + timedelta(days=2),
        weight_g=123_400,
        grade=None,
        recorded_by=None,
    )
    db.session.commit()
    payouts.run_payouts(
        db.session, through=start + timedelta(days=3), now=utcnow(), sending_lease=sending_lease()
    )
    db.session.commit()
    second = contracts.record_delivery(
        db.session,
        contract.id,
        delivered_on=start + timedelta(days=5),
        weight_g=86_750,
        grade=None,
        recorded_by=None,
    )
    db.session.commit()
    return {"contract": contract, "deliveries": [first, second]}


def make_live_session(streamer: Any, products: list[Any], *, start: bool = True) -> Any:
    """A session of ``streamer`` with one listing per product (10 units at ¥29.90)."""
    session = live.schedule_session(
        db.session,
        streamer_id=streamer.id,
        title="香信谷直播 Xiangxingu live",
        scheduled_at=utcnow() + timedelta(minutes=5),
    )
    for product in products:
        live.add_listing(
            db.session,
            session.id,
            streamer_id=streamer.id,
            product_id=product.id,
            flash_price_fen=2990,
            allotted_qty=10,
            per_buyer_limit=5,
        )
    if start:
        live.start_session(db.session, session.id, streamer_id=streamer.id)
    db.session.commit()
    return session


def first_day_of_week(day: date) -> date:
    return day - timedelta(days=day.weekday())


# The browser tests' fixtures (Chromium, the served app, phones, screenshots).
from tests.pages.browser import browser, live_server, phone, screenshot  # noqa: E402, F401
