"""The ``shanhuo`` command: users create (the first admin), seed-demo."""

from __future__ import annotations

from sqlalchemy import func, select

from shop.accounts.models import User
from shop.accounts.passwords import verify_password
from shop.db import db


def test_users_create_makes_the_first_admin(app, db_session):
    result = app.test_cli_runner().invoke(
        args=[
            "users",
            "create",
            "--email",
            "Ops@Shanhuo.cn",
            "--password",
            "first-admin-pw",
            "--role",
            "admin",
            "--role",
            "streamer",
        ]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "ops@shanhuo.cn"))
    assert user.roles == ["admin", "streamer"]
    assert "first-admin-pw" not in result.output


def test_users_create_reads_the_password_from_stdin(app, db_session):
    result = app.test_cli_runner().invoke(
        args=[
            "users",
            "create",
            "--email",
            "li@tongxin.cn",
            "--password-stdin",
            "--role",
            "villager",
        ],
        input="from-standard-input\n",
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "li@tongxin.cn"))
    assert verify_password("from-standard-input", user.password_hash)


def test_users_create_refuses_a_short_password_or_a_taken_email(app, db_session, make_user):
    runner = app.test_cli_runner()
    short = runner.invoke(
        args=["users", "create", "--email", "a@b.cn", "--password", "short", "--role", "admin"]
    )
    assert short.exit_code != 0 and "8 characters" in short.output
    taken = make_user("buyer")
    again = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            taken.email,
            "--password",
            "long-enough",
            "--role",
            "admin",
        ]
    )
    assert again.exit_code != 0 and "already exists" in again.output


def test_seed_demo_is_idempotent_and_prints_the_credentials(app, db_session):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "admin@shanhuo.demo" in first.output
    count = db.session.scalar(select(func.count(User.id)))
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert db.session.scalar(select(func.count(User.id))) == count
