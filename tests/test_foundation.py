"""Health, errors as problem+json, the OpenAPI document, authorization coverage."""

from __future__ import annotations

import pytest

from shop.app import create_app
from shop.auth import public

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


def test_a_failed_request_leaves_nothing_behind_for_the_next_one(client, auth):
    """The error handler rolls the unit of work back, so a later commit cannot carry it."""
    _, admin = auth("admin")
    body = {"email": "dup@b.cn", "password": "long-enough", "display_name": "x"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    assert client.post("/api/v1/auth/register", json=body).status_code == 409
    assert client.get("/api/v1/me", headers=admin).status_code == 200
