from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select

from shop.accounts import service as accounts
from shop.accounts.models import ApiToken, User
from shop.db import db, utcnow
from tests.conftest import TEST_PASSWORD

PROBLEM = "application/problem+json"


def register(client, email="wang@example.com", password="mountain-pomelo", name="王女士"):
    return client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": name},
    )


def token(client, email, password, address="127.0.0.1"):
    return client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_a_newcomer_registers_gets_a_token_and_sees_themselves(client):
    created = register(client, email="Wang@Example.com")
    assert created.status_code == 201
    body = created.get_json()
    assert body["email"] == "wang@example.com"
    assert body["roles"] == ["buyer"]
    assert "password" not in body and "password_hash" not in body

    issued = token(client, "wang@example.com", "mountain-pomelo")
    assert issued.status_code == 200
    assert issued.get_json()["expires_at"]
    headers = {"Authorization": f"Bearer {issued.get_json()['token']}"}

    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.get_json() == {
        "id": body["id"],
        "email": "wang@example.com",
        "display_name": "王女士",
        "roles": ["buyer"],
    }


def test_registering_an_email_twice_is_a_conflict_whatever_its_case(client):
    assert register(client).status_code == 201
    again = register(client, email="WANG@example.com")
    assert again.status_code == 409
    assert again.mimetype == PROBLEM
    assert again.get_json()["type"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "long-enough", "display_name": "x"}, "email"),
        ({"email": "a@b.cn", "password": "short", "display_name": "x"}, "password"),
        ({"email": "a@b.cn", "password": "long-enough"}, "display_name"),
        (
            {"email": "a@b.cn", "password": "long-enough", "display_name": "x", "roles": ["admin"]},
            "roles",
        ),
    ],
)
def test_register_refuses_bad_input_field_by_field(client, body, field):
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["type"] == "validation"
    assert field in problem["errors"]
    assert db.session.scalar(select(User).where(User.email == body["email"])) is None


def test_register_cannot_grant_itself_roles(client):
    response = client.post(
        "/api/v1/auth/register",
        json={
            "email": "sneaky@b.cn",
            "password": "long-enough",
            "display_name": "x",
            "roles": ["admin"],
        },
    )
    assert response.status_code == 422


def test_a_wrong_password_and_an_unknown_email_look_the_same(client, make_user):
    user = make_user("buyer")
    wrong = token(client, user.email, "not the password")
    unknown = token(client, "nobody@test.shanhuo", TEST_PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["type"] == "unauthorized"


def test_only_the_hash_of_a_token_is_stored(client, make_user):
    user = make_user("buyer")
    issued = token(client, user.email, TEST_PASSWORD).get_json()["token"]
    stored = db.session.scalars(select(ApiToken.token_hash)).all()
    assert issued not in stored
    assert len(stored[-1]) == 64


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer forged-token", "Basic dXNlcjpwYXNz", "bearer  ", "Token abc"],
)
def test_me_refuses_missing_or_forged_tokens(client, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == PROBLEM


def test_an_expired_token_is_refused(client, make_user):
    """A token works until its expiry and not after (on every process: the token cache
    keeps each caller's expiry, so it needs no message to forget an expired one)."""
    user = make_user("buyer")
    issued, expires_at = accounts.issue_token(db.session, user, ttl_s=2)
    db.session.commit()
    headers = {"Authorization": f"Bearer {issued}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    time.sleep(max(0.0, (expires_at - utcnow()).total_seconds()) + 0.1)
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401


def test_a_revoked_token_is_refused_and_others_still_work(client, make_user):
    user = make_user("buyer")
    first = token(client, user.email, TEST_PASSWORD).get_json()["token"]
    second = token(client, user.email, TEST_PASSWORD).get_json()["token"]
    revoked = client.delete("/api/v1/auth/token", headers={"Authorization": f"Bearer {first}"})
    assert revoked.status_code == 204
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    )


def test_an_admin_creates_users_with_several_roles(client, auth):
    _, admin = auth("admin")
    response = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={
            "email": "li@tongxin.cn",
            "password": "packing-pomelos",
            "display_name": "李阿姨",
            "roles": ["villager", "buyer"],
        },
    )
    assert response.status_code == 201
    assert response.get_json()["roles"] == ["buyer", "villager"]
    issued = token(client, "li@tongxin.cn", "packing-pomelos")
    assert issued.status_code == 200


@pytest.mark.parametrize("role", ["buyer", "streamer", "villager", "farmer"])
def test_only_admins_create_users(client, auth, role):
    _, headers = auth(role)
    response = client.post(
        "/api/v1/admin/users",
        headers=headers,
        json={
            "email": "x@y.cn",
            "password": "long-enough",
            "display_name": "x",
            "roles": ["admin"],
        },
    )
    assert response.status_code == 403
    assert response.get_json()["type"] == "forbidden"


def test_admin_user_creation_needs_a_token(client):
    response = client.post("/api/v1/admin/users", json={})
    assert response.status_code == 401


def test_admin_user_creation_refuses_unknown_roles_and_duplicates(client, auth):
    admin_user, admin = auth("admin")
    unknown = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={
            "email": "x@y.cn",
            "password": "long-enough",
            "display_name": "x",
            "roles": ["overlord"],
        },
    )
    assert unknown.status_code == 422
    assert "roles.0" in unknown.get_json()["errors"]
    duplicate = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={
            "email": admin_user.email,
            "password": "long-enough",
            "display_name": "x",
            "roles": ["buyer"],
        },
    )
    assert duplicate.status_code == 409


def test_passwords_are_never_echoed_or_logged(client, caplog):
    secret = "very-secret-shiitake"
    with caplog.at_level(logging.DEBUG):
        created = register(client, email="quiet@b.cn", password=secret)
        issued = token(client, "quiet@b.cn", secret)
        failed = token(client, "quiet@b.cn", secret + "-wrong")
        invalid = client.post(
            "/api/v1/auth/register", json={"email": "bad", "password": secret, "display_name": ""}
        )
    for response in (created, issued, failed, invalid):
        assert secret not in response.get_data(as_text=True)
    assert secret not in caplog.text
    stored = db.session.scalar(select(User.password_hash).where(User.email == "quiet@b.cn"))
    assert stored.startswith("scrypt$") and secret not in stored
