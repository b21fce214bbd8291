"""Signed bearer tokens (README, "Tokens from memory"): with Redis a process lets one in
without a database statement, even the first time it sees it, and stops doing so within
a second of any revocation, announced or not. Without Redis they are looked up like
any token. What does not verify is looked up too, and refused if unknown: never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from shop.accounts import service as accounts
from shop.accounts.models import ApiToken, User
from shop.accounts.signed_tokens import Claims, sign, signing_key, verify
from shop.accounts.token_cache import token_cache
from shop.db import db, utcnow
from tests.conftest import TEST_PASSWORD
from tests.support.statements import statements

KEY = signing_key("test-secret")  #: the test app's SECRET_KEY
URL_SAFE = set(string.ascii_letters + string.digits + "-_.")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def store(token: str, user) -> None:
    """Keep a token made by hand as issued ones are kept: its hash, for an hour."""
    hashed = accounts.token_hash(token)
    expires_at = utcnow() + timedelta(hours=1)
    db.session.add(ApiToken(user_id=user.id, token_hash=hashed, expires_at=expires_at))
    db.session.commit()


def admin_probe(client, token: str) -> int:
    """An admin-only endpoint that reads nothing before validating its input: 422 for an
    admin, 403 for anyone else, 401 for a refused token."""
    return client.post("/api/v1/admin/users", json={}, headers=bearer(token)).status_code


def wait_until(condition, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not in time"
        time.sleep(0.01)
    return time.monotonic() - started


# ------------------------------------------------------------------ the format


def test_a_signed_token_names_its_caller_and_only_its_exact_spelling_verifies():
    token = sign(KEY, user_id=7, roles=["buyer", "admin"], issued=1_000, expires=2_000)
    assert token.startswith("s1.") and set(token) <= URL_SAFE and len(token) < 200
    assert verify(KEY, token) == Claims(7, frozenset({"admin", "buyer"}), 1_000, 2_000)
    assert sign(KEY, user_id=7, roles=["buyer"], issued=1_000, expires=2_000) != sign(
        KEY, user_id=7, roles=["buyer"], issued=1_000, expires=2_000
    )  # a nonce in each

    body, mac = token.removeprefix("s1.").split(".")
    other = sign(KEY, user_id=8, roles=["admin"], issued=1_000, expires=2_000)
    other_body = other.removeprefix("s1.").split(".")[0]
    for forged in [
        f"s1.{other_body}.{mac}",  # another payload under this mac
        f"s1.{body}.{mac[:-1]}",
        f"s1.{body}.{mac}A",  # would decode to the same bytes with padding ignored
        f"s1.{body}.{mac}=",
        f"s1.{body}",
        "s1.",
        f"s2.{body}.{mac}",
    ]:
        assert verify(KEY, forged) is None, forged
    assert verify(signing_key("another secret"), token) is None
    assert KEY != b"test-secret" and len(KEY) == 32  # derived, never the secret itself


# ------------------------------------------------------------------ on every setup


def test_signed_in_through_the_api_a_user_gets_a_signed_token(client, make_user):
    user = make_user("buyer")
    signing_in = {"email": user.email, "password": TEST_PASSWORD}
    issued = client.post("/api/v1/auth/token", json=signing_in)
    claims = verify(KEY, issued.json["token"])
    assert claims is not None and claims.user_id == user.id and claims.roles == {"buyer"}
    assert client.get("/api/v1/me", headers=bearer(issued.json["token"])).status_code == 200


@pytest.mark.parametrize(
    "forge",
    [
        "another user's payload",
        "signed with another key",
        "expired",
        "cut short",
        "not base64",
        "a payload that is not ours",
    ],
)
def test_a_forged_or_expired_signed_token_is_refused_never_a_500(forge, client, make_user):
    buyer, admin = make_user("buyer"), make_user("admin")
    now = int(time.time())
    token = accounts.issue_token(db.session, buyer, ttl_s=3600)[0]
    db.session.commit()
    body, mac = token.removeprefix("s1.").split(".")
    if forge == "another user's payload":
        admins = sign(KEY, user_id=admin.id, roles=["admin"], issued=now, expires=now + 60)
        forged = f"s1.{admins.split('.')[1]}.{mac}"
    elif forge == "signed with another key":
        guessed = signing_key("guessed")
        forged = sign(guessed, user_id=admin.id, roles=["admin"], issued=now, expires=now + 60)
    elif forge == "expired":
        forged = sign(KEY, user_id=buyer.id, roles=["buyer"], issued=now - 100, expires=now - 10)
    elif forge == "cut short":
        forged = token[:-5]
    elif forge == "not base64":
        forged = f"s1.{body}!.{mac}"
    else:  # signed with the right key, but no payload we would write
        junk = (
            base64.urlsafe_b64encode(b'{"u":"1","r":["admin"],"i":0,"e":9999999999}')
            .decode()
            .rstrip("=")
        )
        digest = hmac.new(KEY, f"s1.{junk}".encode(), hashlib.sha256).digest()
        forged = f"s1.{junk}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"
    assert client.get("/api/v1/me", headers=bearer(forged)).status_code == 401
    assert admin_probe(client, forged) == 401
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200  # the real one


def test_an_opaque_token_issued_before_still_works_until_it_is_revoked(client, make_user):
    user = make_user("buyer")
    opaque = secrets.token_urlsafe(32)
    store(opaque, user)
    assert client.get("/api/v1/me", headers=bearer(opaque)).json["id"] == user.id
    assert client.delete("/api/v1/auth/token", headers=bearer(opaque)).status_code == 204
    assert client.get("/api/v1/me", headers=bearer(opaque)).status_code == 401


def test_a_token_signed_under_an_earlier_secret_key_is_looked_up(client, make_user):
    """After a SECRET_KEY rotation the tokens out there no longer verify: each is asked
    about in the database, and works as long as its row does."""
    user = make_user("buyer")
    now = int(time.time())
    old_key = signing_key("last year's secret")
    old = sign(old_key, user_id=user.id, roles=["admin"], issued=now, expires=now + 3600)
    store(old, user)
    assert client.get("/api/v1/me", headers=bearer(old)).status_code == 200
    assert admin_probe(client, old) == 403  # the roles are the database's, not the payload's


def test_a_role_change_takes_effect_on_the_next_request_and_signs_no_one_out(
    client, make_user, token_for
):
    admin, operator = make_user("admin"), make_user("admin")
    token = token_for(admin)
    assert admin_probe(client, token) == 422
    accounts.set_roles(db.session, admin.id, ["buyer"], actor_id=operator.id)
    db.session.commit()
    assert admin_probe(client, token) == 403
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    accounts.set_roles(db.session, admin.id, ["admin", "buyer"], actor_id=operator.id)
    db.session.commit()
    assert admin_probe(client, token) == 422


@pytest.mark.embedded
def test_without_redis_a_signed_token_is_read_from_the_database_every_time(
    app, client, make_user, token_for
):
    """The embedded default keeps today's behaviour: the roles come from the database,
    even when a change (here, one written by hand) left no trace for memory."""
    assert token_cache(app) is None
    admin = make_user("admin")
    token = token_for(admin)
    assert admin_probe(client, token) == 422
    db.session.execute(text("DELETE FROM user_roles WHERE user_id = :id"), {"id": admin.id})
    db.session.execute(
        text("INSERT INTO user_roles (user_id, role) VALUES (:id, 'buyer')"), {"id": admin.id}
    )
    db.session.commit()
    assert admin_probe(client, token) == 403


# ------------------------------------------------------------------ PostgreSQL and Redis


@pytest.fixture
def trusted_memory(app, committing):
    """A process whose revocation watch has polled (as any process a second after its
    first signed-in request)."""
    cache = token_cache(app)
    assert cache is not None and cache.watch is not None
    wait_until(cache.trusted)
    return cache


@pytest.mark.postgres
@pytest.mark.redis
def test_a_signed_tokens_first_request_on_a_process_sends_no_statement(
    app, trusted_memory, make_user, token_for
):
    with app.app_context():
        admin_token = token_for(make_user("admin"))
        buyer_token = token_for(make_user("buyer"))
        user = make_user("buyer")
        opaque = secrets.token_urlsafe(32)
        store(opaque, user)
        db.session.remove()
    client = app.test_client()
    with app.app_context(), statements(app) as sent:
        assert admin_probe(client, admin_token) == 422
        assert admin_probe(client, buyer_token) == 403
    assert sent == []
    with app.app_context(), statements(app) as sent:
        assert admin_probe(client, opaque) == 403
    assert sent == ["SELECT"]  # an opaque token is read the first time


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("what", ["the token", "its user"])
def test_a_revocation_written_without_an_announcement_is_known_within_1_s(
    what, app, trusted_memory, make_user, token_for
):
    """Whatever the announcement does, the database is read a few times a second: a
    revocation stamped by hand, with nothing published, stops the token all the same."""
    with app.app_context():
        admin_id = make_user("admin").id
        token = token_for(db.session.get(User, admin_id))
        db.session.remove()
    client = app.test_client()
    assert admin_probe(client, token) == 422  # from memory
    with app.app_context():
        if what == "the token":
            db.session.execute(
                text("UPDATE api_tokens SET revoked_at = now() WHERE token_hash = :hash"),
                {"hash": accounts.token_hash(token)},
            )
        else:  # roles changed by hand, stamped as the service does
            db.session.execute(
                text("UPDATE user_roles SET role = 'buyer' WHERE user_id = :id"), {"id": admin_id}
            )
            db.session.execute(
                text("UPDATE users SET auth_changed_at = now() WHERE id = :id"), {"id": admin_id}
            )
        db.session.commit()
        db.session.remove()
    expected = 401 if what == "the token" else 403
    assert wait_until(lambda: admin_probe(client, token) == expected) < 1.0
