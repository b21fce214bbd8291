"""Demo data: the Xiangxingu (香信谷) workshop of Zhukou, Qingyuan, with the demo villager
as its lead; skill bonuses, a training, and a partner firm's pencil-packing work order."""

from __future__ import annotations

from datetime import date, timedelta

from flask import current_app
from sqlalchemy import select

from fulfillment import clock, service, skills, work_orders
from fulfillment.models import Partner, SkillChange, Training, Workshop
from shop.accounts.demo import demo_user
from shop.db import DbSession

DEMO_WORKSHOP = "香信谷共富工坊 Xiangxingu workshop"
DEMO_VILLAGE = "竹口镇 Zhukou, 庆元县 Qingyuan"
DEMO_VILLAGER = "villager@shanhuo.demo"


def seed_demo(session: DbSession) -> list[str]:
    """The workshop and its first member; running it again adds nothing."""
    workshop = session.scalar(select(Workshop).where(Workshop.name == DEMO_WORKSHOP))
    if workshop is None:
        workshop = service.create_workshop(session, name=DEMO_WORKSHOP, village=DEMO_VILLAGE)
    villager = demo_user(session, DEMO_VILLAGER)
    if service.membership(session, workshop.id, villager.id) is None:
        service.add_member(session, workshop.id, user_id=villager.id, lead=True)
    lines = [f" workshop: {DEMO_WORKSHOP} (id {workshop.id}), member {DEMO_VILLAGER}"]
    return lines + _skills(session, workshop) + _work_order(session, workshop)


PARTNER = "庆元县文具厂 Qingyuan Stationery Co."
TRAINING = "香菇分拣与包装 sorting and packing shiitake"


def _skills(session: DbSession, workshop: Workshop) -> list[str]:
    """+10 % at level 2, +20 % at level 3; a training, after which the villager is level 2."""
    villager = demo_user(session, DEMO_VILLAGER)
    admin = demo_user(session, "admin@shanhuo.demo")
    if session.scalar(select(Training.id).where(Training.workshop_id == workshop.id)) is None:
        skills.set_bonus(session, workshop.id, level2_bp=1000, level3_bp=2000)
        skills.record_training(
            session,
            workshop.id,
            title=TRAINING,
            held_on=date(2025, 11, 20),
            attendee_ids=[villager.id],
            by=admin,
        )
    if session.scalar(select(SkillChange.id).where(SkillChange.user_id == villager.id)) is None:
        skills.set_level(
            session,
            workshop.id,
            villager.id,
            kind="parcel",
            level=2,
            reason=f"培训结业 {TRAINING}",
            by=admin,
        )
    return [f"   skills: +10 % at level 2, +20 % at level 3; training {TRAINING!r}"]


def _work_order(session: DbSession, workshop: Workshop) -> list[str]:
    """A partner firm's work order: 2,400 pencils packed in batches of 120."""
    partner = session.scalar(select(Partner).where(Partner.name == PARTNER))
    if partner is None:
        partner = work_orders.create_partner(session, name=PARTNER, contact="0578-6120000")
        now = clock.now()
        work_orders.create_work_order(
            session,
            partner_id=partner.id,
            workshop_id=workshop.id,
            item="铅笔包装 packing pencils, 12 a box",
            pieces=2400,
            batch_pieces=120,
            batch_rate_fen=180,
            batch_price_fen=300,
            due_on=now.date() + timedelta(days=14),
            created_by=demo_user(session, "admin@shanhuo.demo").id,
            now=now,
            tz_name=current_app.config["SHOP_TIMEZONE"],
        )
    return [f"  partner: {PARTNER} (id {partner.id}), 2,400 pencils in 20 batches"]
