"""Health, errors as problem+json, the OpenAPI document, authorization coverage."""

from __future__ import annotations

import pytest
from flask import abort
from sqlalchemy import select

from shop.accounts.models import User
from shop.accounts.service import create_user
from shop.app import create_app
from shop.auth import public
from shop.db import db
from shop.errors import Conflict, NotFound
from tests.conftest import RequestClient

PROBLEM = "application/problem+json"


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client, app):
    response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.get_json()["checks"]
    assert checks["database"] == "ok"
    assert ("redis" in checks) == bool(app.config["REDIS_URL"])


def test_readyz_keeps_the_node_in_and_says_degraded_when_redis_does_not_answer(app, client):
    import redis

    saved = app.extensions.get("shanhuo.redis")
    app.extensions["shanhuo.redis"] = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2)
    try:
        response = client.get("/readyz")
    finally:
        if saved is None:
            app.extensions.pop("shanhuo.redis")
        else:
            app.extensions["shanhuo.redis"] = saved
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["checks"]["redis"].startswith("degraded")


@pytest.mark.parametrize(
    ("method", "path", "status", "type_"),
    [
        ("get", "/api/v1/no-such-thing", 404, "not-found"),
        ("delete", "/api/v1/me", 405, "method-not-allowed"),
    ],
)
def test_http_errors_are_problem_json(client, method, path, status, type_):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == type_ and body["status"] == status
    assert body["title"] and body["detail"]


@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff\xfe", b'{"email": "a@b.cn", "password": ', b"[1, 2", b""]
)
def test_malformed_json_is_a_400_problem(client, raw):
    response = client.post(
        "/api/v1/auth/register", data=raw, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.mimetype == PROBLEM


def test_a_json_array_instead_of_an_object_is_a_validation_problem(client):
    response = client.post("/api/v1/auth/register", json=[1, 2, 3])
    assert response.status_code == 422
    assert response.get_json()["type"] == "validation"


def test_an_oversized_body_is_413_problem_json(app, client):
    response = client.post(
        "/api/v1/auth/register",
        data=b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.mimetype == PROBLEM
    assert response.get_json()["type"] == "too-large"


def test_an_unexpected_error_is_a_500_problem_without_a_stack_trace(app_config):
    fresh = create_app(app_config)

    @fresh.get("/__boom")
    @public
    def boom():
        raise RuntimeError("secret internals")

    response = fresh.test_client().get("/__boom")
    assert response.status_code == 500
    assert response.mimetype == PROBLEM
    assert response.get_json()["type"] == "internal"
    assert "secret internals" not in response.get_data(as_text=True)


def test_openapi_document_is_served_with_security_and_problem_responses(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    me = spec["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "401" in me["responses"]
    default = spec["components"]["responses"]["DEFAULT_ERROR"]
    assert "application/problem+json" in default["content"]
    assert client.get("/api/docs").status_code == 200


def test_every_endpoint_names_who_may_call_it(app):
    """DESIGN.md: every endpoint names the roles that may call it (or is public)."""
    unguarded = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in ("static",) or rule.endpoint.startswith("api-docs."):
            continue
        if not hasattr(view, "_shanhuo_access"):
            unguarded.append(rule.rule)
    assert unguarded == []


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        (
            "post",
            "/api/v1/auth/register",
            {"json": {"email": "a@b.cn", "password": "long\x00enough", "display_name": "x"}},
        ),
        ("post", "/api/v1/auth/token", {"json": {"email": "a\x00@b.cn", "password": "whatever"}}),
        (
            "post",
            "/api/v1/auth/register",
            {
                "json": {
                    "email": "a@b.cn",
                    "password": "long-enough",
                    "display_name": "x",
                    "nested\x00key": 1,
                }
            },
        ),
        ("get", "/api/v1/products?cursor=1%00", {}),
    ],
)
def test_nul_characters_are_refused_before_they_reach_the_database(client, method, url, kwargs):
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == 422
    assert response.get_json()["type"] == "validation"
    assert "NUL" in response.get_json()["detail"]


def test_a_refused_registration_leaves_the_first_account_as_it_was(client, db_session):
    body = {"email": "dup@b.cn", "password": "long-enough", "display_name": "First"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    again = client.post("/api/v1/auth/register", json={**body, "display_name": "Second"})
    assert again.status_code == 409 and again.get_json()["type"] == "conflict"
    stored = db_session.scalars(select(User).where(User.email == "dup@b.cn")).all()
    assert [user.display_name for user in stored] == ["First"]


@pytest.mark.parametrize(
    "failure",
    [Conflict("refused after a write"), NotFound(), RuntimeError("a bug after a write")],
    ids=["domain-error", "http-error", "unexpected-error"],
)
def test_the_error_handler_ends_the_unit_of_work_so_a_later_commit_carries_none_of_it(
    app_config, db_session, failure
):
    """A request that wrote and then failed: whatever runs after the error handler in the
    same request (here an ``after_request`` hook that commits) commits nothing of it.

    (When the request ends its Session is removed, which rolls back too; the handler's
    rollback is what protects the rest of the request.)"""
    fresh = create_app(app_config)
    fresh.test_client_class = RequestClient
    email = f"half-{type(failure).__name__.lower()}@written.cn"

    @fresh.post("/api/v1/__half_written")
    @public
    def half_written():
        create_user(
            db.session, email=email, password="long-enough", display_name="x", roles=["buyer"]
        )
        db.session.flush()
        if isinstance(failure, NotFound):
            abort(404)
        raise failure

    @fresh.after_request
    def commit_afterwards(response):
        db.session.commit()
        return response

    response = fresh.test_client().post("/api/v1/__half_written")
    assert response.status_code == {Conflict: 409, NotFound: 404}.get(type(failure), 500)
    assert response.mimetype == PROBLEM
    assert db_session.scalar(select(User).where(User.email == email)) is None


def test_what_a_view_forgets_to_commit_is_gone_when_its_request_ends(app_config, db_session):
    """The test client gives each request a Session of its own, as production does, so
    a missing commit shows in the tests."""
    fresh = create_app(app_config)
    fresh.test_client_class = RequestClient

    @fresh.post("/api/v1/__uncommitted")
    @public
    def uncommitted():
        user = create_user(
            db.session,
            email="never@committed.cn",
            password="long-enough",
            display_name="x",
            roles=["buyer"],
        )
        db.session.flush()
        return {"id": user.id}

    assert fresh.test_client().post("/api/v1/__uncommitted").status_code == 200
    assert db_session.scalar(select(User).where(User.email == "never@committed.cn")) is None


def test_what_a_view_commits_is_there_for_the_next_request_and_for_the_test(client, db_session):
    """Each request has its own Session: the row the test reads comes from the database."""
    body = {"email": "kept@b.cn", "password": "long-enough", "display_name": "Kept"}
    created = client.post("/api/v1/auth/register", json=body).get_json()
    token = client.post(
        "/api/v1/auth/token", json={"email": "kept@b.cn", "password": "long-enough"}
    ).get_json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["id"] == created["id"]
    assert db_session.get(User, created["id"]).display_name == "Kept"
