"""Demo people, named after the Qingyuan county (庆元县, Lishui) workshops of DESIGN.md."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from shop.accounts import service
from shop.accounts.models import User
from shop.db import DbSession

DEMO_PASSWORD = "shanhuo-demo"

#: email, display name, roles
DEMO_USERS = [
    ("admin@shanhuo.demo", "运营 Operator", ["admin"]),
    ("streamer@shanhuo.demo", "香信谷 小林 Xiangxingu Lin", ["streamer"]),
    ("buyer@shanhuo.demo", "王女士 Ms Wang", ["buyer"]),
    ("villager@shanhuo.demo", "同心社区 李阿姨 Auntie Li (Tongxin)", ["villager"]),
    ("farmer@shanhuo.demo", "庆菇 菇农 吴师傅 Master Wu (Qinggu)", ["farmer"]),
]


def demo_user(session: DbSession, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email))
    assert user is not None, f"demo user {email} missing; seed accounts first"
    return user


def seed_demo(session: DbSession) -> list[str]:
    lines = []
    for email, name, roles in DEMO_USERS:
        if session.scalar(select(User.id).where(User.email == email)) is None:
            service.create_user(
                session,
                email=email,
                password=DEMO_PASSWORD,
                display_name=name,
                roles=roles,
                scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
            )
        lines.append(f"{roles[0]:>9}: {email} / {DEMO_PASSWORD}")
    return lines
