"""Demo data for traceability: lots from two farmers received into the fresh shiitake's
stock and packed into the demo buyer's parcels, so ``/t/{code}`` and the farmer's page
have something to show. Runs after the contracts and fulfillment seeders."""

from __future__ import annotations

from datetime import date

from flask import current_app
from sqlalchemy import select

from contracts import service
from contracts.demo import PRODUCT_SKU
from contracts.models import Contract, Delivery
from fulfillment import claims, clock
from fulfillment import service as fulfillment
from fulfillment.demo import DEMO_VILLAGER, DEMO_WORKSHOP
from fulfillment.models import PackingTaskLot, Workshop
from shop.accounts import service as accounts
from shop.accounts.demo import DEMO_PASSWORD, demo_user
from shop.accounts.models import User
from shop.catalog import service as catalog
from shop.db import DbSession
from shop.orders import service as orders

SECOND_FARMER = "farmer2@shanhuo.demo"
SHIPPING = {
    "name": "王女士 Ms Wang",
    "phone": "+86 138 0000 0000",
    "address": "上海市 徐汇区 漕溪北路 1 号",
    "region": "Shanghai",
}


def _second_farmer(session: DbSession) -> User:
    farmer = session.scalar(select(User).where(User.email == SECOND_FARMER))
    if farmer is None:
        farmer = accounts.create_user(
            session,
            email=SECOND_FARMER,
            password=DEMO_PASSWORD,
            display_name="庆菇 菇农 周大姐 Sister Zhou (Qinggu)",
            roles=["farmer"],
            scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
        )
        service.update_farmer_profile(
            session, farmer.id, {"village": "庆元县 黄田镇 Huangtian, Qingyuan"}
        )
    return farmer


def seed_demo(session: DbSession) -> list[str]:
    product = catalog.get_product_by_sku(session, PRODUCT_SKU)
    admin = demo_user(session, "admin@shanhuo.demo")
    farmer = _second_farmer(session)
    contract = session.scalar(select(Contract).where(Contract.farmer_id == farmer.id))
    if contract is None:
        contract = service.create_contract(
            session,
            farmer_id=farmer.id,
            product_id=product.id,
            premium_bp=1500,
            committed_kg=500,
            starts_on=date(2025, 9, 1),
            ends_on=date(2026, 8, 31),
            created_by=admin.id,
        )
        service.accept_contract(session, contract.id, farmer)
        service.record_delivery(
            session,
            contract.id,
            delivered_on=date(2025, 10, 20),
            weight_g=42_000,
            recorded_by=admin.id,
        )
    # the first farmer's first delivery and the second farmer's: 3 units each into stock
    deliveries = [
        session.scalar(
            select(Delivery)
            .where(Delivery.farmer_id == farmer_id, Delivery.lot_id.is_not(None))
            .order_by(Delivery.delivered_on, Delivery.id)
        )
        for farmer_id in (demo_user(session, "farmer@shanhuo.demo").id, farmer.id)
    ]
    lots = [d.lot for d in deliveries if d is not None and d.lot is not None]
    if len(lots) < 2:
        return ["    trace: the demo deliveries have no lots (seeded before lots existed)"]
    for lot in lots:
        if lot.received == 0:
            catalog.adjust_stock(
                session,
                product.id,
                delta=3,
                reason="收货 received from the farmer",
                actor_id=admin.id,
                lot_code=lot.code,
            )
    if session.scalar(select(PackingTaskLot.task_id).where(PackingTaskLot.lot_id == lots[1].id)):
        return [f"    trace: lots {lots[0].code}, {lots[1].code} already reached buyers"]
    codes = _pack_parcels(session, product.id)
    return [f"    trace: lots {lots[0].code}, {lots[1].code}; parcels /t/{' /t/'.join(codes)}"]


def _pack_parcels(session: DbSession, product_id: int) -> list[str]:
    """The demo buyer orders twice (2 + 2 units); the demo villager packs both."""
    buyer = demo_user(session, "buyer@shanhuo.demo")
    villager = demo_user(session, DEMO_VILLAGER)
    workshop = session.scalar(select(Workshop).where(Workshop.name == DEMO_WORKSHOP))
    assert workshop is not None
    config = current_app.config
    codes = []
    for n in (1, 2):
        order, _ = orders.place_order(
            session,
            buyer_id=buyer.id,
            lines=[{"product_id": product_id, "qty": 2}],
            shipping=SHIPPING,
            idempotency_key=f"demo-trace-{n}",
            payment_timeout_s=config["ORDER_PAYMENT_TIMEOUT_S"],
        )
        orders.mark_paid(session, order.id)
        task = fulfillment.create_packing_task(
            session, order.id, now=clock.now(), due_s=config["PARCEL_DUE_S"]
        )
        assert task is not None
        task.workshop_id = workshop.id  # the demo villager's, whichever is least busy
        session.flush()
        claimed = claims.claim_next(
            session,
            workshop.id,
            user_id=villager.id,
            now=clock.now(),
            lease_s=config["CLAIM_LEASE_S"],
            max_claims=config["MAX_CLAIMS_PER_VILLAGER"],
        )
        if claimed is None or claimed.id != task.id:
            # something else was due first (a database people have used): leave it be
            if claimed is not None:
                claims.release(session, claimed.id, user_id=villager.id, now=clock.now())
            continue
        claims.complete(
            session,
            task.id,
            user_id=villager.id,
            now=clock.now(),
            packed_weight_g=None,
            tolerance_bp=config["PACK_WEIGHT_TOLERANCE_BP"],
        )
        codes.append(str(task.trace_code))
    return codes
