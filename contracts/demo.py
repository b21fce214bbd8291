"""Demo data: a Qinggu (庆菇) mushroom farmer under a guaranteed-price contract.

Market prices for fresh shiitake, an active contract at market + 12 % for the demo
farmer, two deliveries and one paid payout — so the farmer's statement has lines
that can be recomputed by hand. Idempotent: a second run adds nothing.
"""

from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy import select

from contracts import prices, service
from contracts.models import Contract, ContractState, Delivery, MarketPrice, Payout
from contracts.payouts import service as payouts
from contracts.pricing import delivery_amount_fen
from contracts.tasks import send_payout_now, sending_lease
from shop.accounts.demo import demo_user
from shop.catalog import service as catalog
from shop.catalog.models import Product
from shop.db import DbSession, utcnow
from shop.errors import NotFound

FARMER_EMAIL = "farmer@shanhuo.demo"
ADMIN_EMAIL = "admin@shanhuo.demo"
PRODUCT_SKU = "QG-SHIITAKE-FRESH"
PREMIUM_BP = 1200

#: grade, fen per kg, effective on, source
MARKET_PRICES = [
    ("standard", 1680, date(2025, 9, 1), "庆元香菇市场 Qingyuan mushroom market, weekly average"),
    ("standard", 1745, date(2025, 9, 22), "庆元香菇市场 Qingyuan mushroom market, weekly average"),
    ("premium", 2390, date(2025, 9, 1), "庆元香菇市场 Qingyuan mushroom market, flower shiitake"),
]
#: Market prices for the shop's demo products, when its seeder made them (sku, fen per kg, source)
OTHER_PRICES = [
    ("QG-SHIITAKE-500", 1745, "庆元香菇市场 Qingyuan mushroom market, weekly average"),
    ("QG-SHIITAKE-DRY-250", 9800, "庆元香菇市场 Qingyuan mushroom market, dried shiitake"),
    ("XXG-WHITE-FUNGUS-250", 5200, "古田银耳市场 Gutian white fungus market"),
    ("ZK-POMELO-5KG", 640, "竹口镇 甜桔柚 Zhukou sweet pomelo, farm-gate price"),
]
#: delivered on, weight in grams
DELIVERIES = [(date(2025, 9, 15), 123_400), (date(2025, 10, 8), 86_750)]
PAID_THROUGH = date(2025, 9, 30)


def _product(session: DbSession) -> Product:
    """The shop's fresh shiitake if its seeder made one, else ours, made by the catalog."""
    try:
        return catalog.get_product_by_sku(session, PRODUCT_SKU)
    except NotFound:
        return catalog.create_product(
            session,
            sku=PRODUCT_SKU,
            name="庆元鲜香菇 Qingyuan fresh shiitake (per kg)",
            category="mushroom",
            unit_label="1 kg",
            unit_weight_g=1000,
            price_fen=3200,
            stock=0,
            packing_rate_fen=0,
        )


def seed_demo(session: DbSession) -> list[str]:
    farmer = demo_user(session, FARMER_EMAIL)
    admin = demo_user(session, ADMIN_EMAIL)
    product = _product(session)

    for grade, fen_per_kg, effective_on, source in MARKET_PRICES:
        exists = session.scalar(
            select(MarketPrice.id).where(
                MarketPrice.product_id == product.id,
                MarketPrice.grade == grade,
                MarketPrice.effective_on == effective_on,
            )
        )
        if exists is None:
            prices.add_market_price(
                session,
                product_id=product.id,
                grade=grade,
                price_fen_per_kg=fen_per_kg,
                effective_on=effective_on,
                source=source,
                created_by=admin.id,
            )

    for sku, fen_per_kg, source in OTHER_PRICES:
        other = session.scalar(select(Product).where(Product.sku == sku))
        if other is not None and not session.scalar(
            select(MarketPrice.id).where(MarketPrice.product_id == other.id)
        ):
            prices.add_market_price(
                session,
                product_id=other.id,
                price_fen_per_kg=fen_per_kg,
                effective_on=date(2025, 9, 1),
                source=source,
                created_by=admin.id,
            )

    profile = service.update_farmer_profile(
        session,
        farmer.id,
        {"village": "庆元县 五大堡乡 Wudabao, Qingyuan", "phone": "+86 578 600 0000"},
    )
    if profile.stripe_account_id is None:
        service.set_payout_account(session, farmer.id, "acct_1QingguDemoWu")

    contract = session.scalar(
        select(Contract).where(Contract.farmer_id == farmer.id, Contract.product_id == product.id)
    )
    if contract is None:
        contract = service.create_contract(
            session,
            farmer_id=farmer.id,
            product_id=product.id,
            premium_bp=PREMIUM_BP,
            committed_kg=2000,
            starts_on=date(2025, 9, 1),
            ends_on=date(2026, 8, 31),
            created_by=admin.id,
        )
        service.accept_contract(session, contract.id, farmer)
        for delivered_on, weight_g in DELIVERIES:
            service.record_delivery(
                session,
                contract.id,
                delivered_on=delivered_on,
                weight_g=weight_g,
                recorded_by=admin.id,
            )
    if contract.state == ContractState.DRAFT.value:
        service.accept_contract(session, contract.id, farmer)

    if session.scalar(select(Payout.id).where(Payout.farmer_id == farmer.id)) is None:
        run = payouts.run_payouts(
            session, through=PAID_THROUGH, now=utcnow(), sending_lease=sending_lease()
        )
        session.commit()  # the payout must be committed before it is sent
        for payout_id in run.to_send:
            try:
                send_payout_now(payout_id)
            except RuntimeError as error:  # no provider (production without a Stripe key)
                current_app.logger.warning("demo payout %s not sent: %s", payout_id, error)

    lines = [f"contracts: {PRODUCT_SKU} market prices; contract {contract.id} for {FARMER_EMAIL}"]
    for delivery in session.scalars(
        select(Delivery).where(Delivery.contract_id == contract.id).order_by(Delivery.id)
    ):
        check = delivery_amount_fen(
            market_fen_per_kg=delivery.market_price_fen_per_kg,
            premium_bp=delivery.premium_bp,
            weight_g=delivery.weight_g,
        )
        lines.append(
            f"  delivery {delivery.delivered_on}: {delivery.weight_g} g × "
            f"{delivery.market_price_fen_per_kg} fen/kg × (1 + {delivery.premium_bp} bp) = "
            f"{delivery.amount_fen} fen" + ("" if check == delivery.amount_fen else " (MISMATCH)")
        )
    return lines
