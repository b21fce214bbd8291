"""Demo data: the Xiangxingu (香信谷) workshop of Zhukou, Qingyuan, with the demo villager."""

from __future__ import annotations

from sqlalchemy import select

from fulfillment import service
from fulfillment.models import Workshop
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
    return [f" workshop: {DEMO_WORKSHOP} (id {workshop.id}), member {DEMO_VILLAGER}"]
