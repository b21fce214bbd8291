"""Demo products and a scheduled live session at the Xiangxingu (香信谷) workshop."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from shop.accounts.demo import demo_user
from shop.catalog import service as catalog
from shop.catalog.models import Product
from shop.db import DbSession
from shop.errors import NotFound
from shop.live import service as live
from shop.live.models import LiveSession

STREAMER_EMAIL = "streamer@shanhuo.demo"
SESSION_TITLE = "香信谷 山货直播 Xiangxingu mountain-goods live"

#: sku, name, category, unit label, unit weight g, price fen, stock, packing rate fen
PRODUCTS = [
    ("QG-SHIITAKE-500", "庆元香菇 Qingyuan shiitake", "mushroom", "500 g bag", 500, 6800, 300, 60),
    (
        "QG-SHIITAKE-DRY-250",
        "庆元干香菇 dried shiitake",
        "mushroom",
        "250 g bag",
        250,
        5900,
        200,
        50,
    ),
    (
        "XXG-WHITE-FUNGUS-250",
        "香信谷 白木耳 white fungus",
        "fungus",
        "250 g bag",
        250,
        4500,
        200,
        50,
    ),
    (
        "ZK-POMELO-5KG",
        "竹口 甜桔柚 Zhukou sweet pomelo",
        "pomelo",
        "5 kg box",
        5000,
        8800,
        120,
        150,
    ),
]

#: sku, flash price fen, allotted units, per-buyer limit
LISTINGS = [
    ("QG-SHIITAKE-500", 4990, 100, 5),
    ("XXG-WHITE-FUNGUS-250", 3290, 60, 3),
    ("ZK-POMELO-5KG", 6990, 40, 2),
]


def _product(
    session: DbSession, row: tuple[str, str, str, str, int, int, int, int], owner_id: int
) -> Product:
    """The streamer's own product; its packing rate set as an admin would (a seed is the
    operator's doing)."""
    sku, name, category, unit_label, weight, price, stock, packing = row
    try:
        return catalog.get_product_by_sku(session, sku)
    except NotFound:
        return catalog.create_product(
            session,
            owner_id=owner_id,
            sku=sku,
            name=name,
            category=category,
            unit_label=unit_label,
            unit_weight_g=weight,
            price_fen=price,
            stock=stock,
            packing_rate_fen=packing,
        )


def seed_demo(session: DbSession) -> list[str]:
    streamer = demo_user(session, STREAMER_EMAIL)
    products = {row[0]: _product(session, row, streamer.id) for row in PRODUCTS}
    existing = session.scalar(
        select(LiveSession).where(
            LiveSession.streamer_id == streamer.id, LiveSession.title == SESSION_TITLE
        )
    )
    if existing is None:
        zone = ZoneInfo(current_app.config["SHOP_TIMEZONE"])
        tomorrow = datetime.now(zone).date() + timedelta(days=1)
        existing = live.schedule_session(
            session,
            streamer_id=streamer.id,
            title=SESSION_TITLE,
            scheduled_at=datetime.combine(tomorrow, time(20, 0), tzinfo=zone),
        )
        for sku, flash_price, allotted, limit in LISTINGS:
            live.add_listing(
                session,
                existing.id,
                streamer_id=streamer.id,
                product_id=products[sku].id,
                flash_price_fen=flash_price,
                allotted_qty=allotted,
                per_buyer_limit=limit,
            )
    names = ", ".join(sku for sku in products)
    return [
        f"     shop: products {names}",
        f"     shop: live session {existing.id} '{SESSION_TITLE}' ({existing.state}), "
        f"{len(LISTINGS)} listings",
    ]
