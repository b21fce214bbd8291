"""Fixtures for the shop's live sessions and orders."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from shop.db import db
from shop.live import service as live_service
from shop.orders import service as order_service

SHIPPING = {
    "name": "王女士",
    "phone": "+86 138 0000 0000",
    "address": "浙江省丽水市庆元县 松源街道 1 号",
    "region": "Zhejiang",
}

_keys = itertools.count(1)


def new_key() -> str:
    return f"key-{next(_keys)}"


@pytest.fixture
def make_live_session(app: Flask, make_user: Callable[..., Any]) -> Callable[..., Any]:
    """``make_live_session(listings=[(product, flash_price_fen, allotted, limit)], live=True)``
    → the session (committed), owned by a new streamer (``.streamer_id``)."""

    def make(
        listings: list[tuple[Any, int, int, int | None]] = (),  # type: ignore[assignment]
        *,
        live: bool = True,
        streamer: Any = None,
    ) -> Any:
        streamer = streamer or make_user("streamer")
        session = live_service.schedule_session(
            db.session,
            streamer_id=streamer.id,
            title="香信谷 直播 Xiangxingu live",
            scheduled_at=datetime.now(UTC) + timedelta(hours=1),
        )
        for product, price, allotted, limit in listings:
            live_service.add_listing(
                db.session,
                session.id,
                streamer_id=streamer.id,
                product_id=product.id,
                flash_price_fen=price,
                allotted_qty=allotted,
                per_buyer_limit=limit,
            )
        if live:
            live_service.start_session(db.session, session.id, streamer_id=streamer.id)
        db.session.commit()
        return session

    return make


@pytest.fixture
def place(app: Flask) -> Callable[..., Any]:
    """``place(buyer, [{"listing_id": 1, "qty": 2}])`` → the committed order (service level)."""

    def make(buyer: Any, lines: list[dict[str, Any]], *, key: str | None = None) -> Any:
        order, _ = order_service.place_order(
            db.session,
            buyer_id=buyer.id,
            lines=lines,
            shipping=SHIPPING,
            idempotency_key=key or new_key(),
            payment_timeout_s=900,
        )
        db.session.commit()
        return order

    return make


def no_refund(order: Any) -> None:
    raise AssertionError("no refund expected")
