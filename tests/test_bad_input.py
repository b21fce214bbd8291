"""No input answers 500: every field of every operation in the OpenAPI document, bad.

For each operation, each integer, string and date in its path, query, headers and JSON
body is replaced, one at a time, by values that once reached the database or the date
arithmetic (a number past its column's range, a string past its column's length, a lone
surrogate, year 1 and year 9999, a pattern with a trailing newline, a blank name). The
other fields hold valid values naming real rows, so the bad one is what is judged. Each
answer must be a 4xx problem, with nothing written and no error logged.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from shop.app import create_app
from shop.db import db

#: operations that take no JSON (the webhook's signed body, CSV, uploads: tested apart)
#: or stream for a while on valid input
NOT_JSON = {
    ("post", "/api/v1/payments/stripe/webhook"),
    ("post", "/api/v1/market-prices/import"),
    ("post", "/api/v1/media"),
}

#: valid strings for fields with a pattern (a generic "x" would not match it)
EXAMPLES = {
    "sku": "PROBE-1",
    "phone": "13800000000",
    "grade": "A",
    "stripe_account_id": "acct_probe",
    "Idempotency-Key": "probe-key",
    "Stripe-Signature": "t=1,v1=0",
    "key": "0" * 64,
    "state": None,  # enums use their first value
}

YEAR_1 = {"date": "0001-01-01", "date-time": "0001-01-01T00:00:00+08:00"}
YEAR_9999 = {"date": "9999-12-31", "date-time": "9999-12-31T23:59:59-08:00"}


def _operations() -> tuple[dict[str, Any], list[tuple[str, str]]]:
    instance = tempfile.mkdtemp(prefix="shanhuo-openapi-")
    app = create_app(
        {
            "DATABASE_URL": "sqlite://",
            "INSTANCE_DIR": instance,
            "SHANHUO_INSTANCE": instance,
            "MEDIA_ROOT": instance,
            "SECRET_KEY": "x",
            "CELERY_BROKER_URL": None,
        }
    )
    spec = app.test_client().get("/api/openapi.json").get_json()
    operations = [
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete") and (method, path) not in NOT_JSON
    ]
    return spec, operations


SPEC, OPERATIONS = _operations()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


# ---------------------------------------------------------------------------- the world


@pytest.fixture
def world(client, auth, make_product) -> Iterator[dict[str, Any]]:
    """One of everything, made through the API by a caller holding every role."""
    user, headers = auth("admin", "streamer", "buyer", "villager", "farmer")
    product = make_product(stock=100)

    def post(path: str, body: dict[str, Any], **extra: str) -> dict[str, Any]:
        response = client.post(path, json=body, headers={**headers, **extra})
        assert response.status_code in (200, 201), (path, response.json)
        return response.json  # type: ignore[no-any-return]

    live = post("/api/v1/live-sessions", {"title": "t", "scheduled_at": "2030-01-01T10:00+08:00"})
    listing = post(
        f"/api/v1/live-sessions/{live['id']}/listings",
        {"product_id": product.id, "flash_price_fen": 100, "allotted_qty": 5},
    )
    order = post(
        "/api/v1/orders",
        {
            "lines": [{"product_id": product.id, "qty": 1}],
            "shipping": {"name": "n", "phone": "13800000000", "address": "a", "region": "r"},
        },
        **{"Idempotency-Key": "world-order"},
    )
    workshop = post("/api/v1/workshops", {"name": "w", "village": "v"})
    post(f"/api/v1/workshops/{workshop['id']}/members", {"user_id": user.id})
    contract = post(
        "/api/v1/contracts",
        {
            "farmer_id": user.id,
            "product_id": product.id,
            "premium_bp": 1200,
            "committed_kg": 10,
            "starts_on": "2030-01-01",
            "ends_on": "2030-12-31",
        },
    )
    ids = {
        "product_id": product.id,
        "session_id": live["id"],
        "listing_id": listing["id"],
        "order_id": order["id"],
        "workshop_id": workshop["id"],
        "user_id": user.id,
        "farmer_id": user.id,
        "contract_id": contract["id"],
        "task_id": 1,
        "media_id": 1,
        "delivery_id": 1,
        "payment_id": "sbx_pi_" + "0" * 24,
    }
    yield {"headers": headers, "ids": ids}


# ---------------------------------------------------------------------------- values


def _valid(name: str, schema: dict[str, Any], ids: dict[str, Any]) -> Any:
    schema = _resolve(schema)
    kind = schema.get("type")
    if name in ids and kind in ("integer", "string"):
        return ids[name]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return _valid_object(schema, ids)
    if kind == "array":
        item = _valid(name, schema["items"], ids)
        if name == "roles":
            item = "buyer"
        return [item]
    if kind == "boolean":
        return False
    if kind == "integer":
        low = schema.get("minimum", 1)
        return max(low, min(1, schema.get("maximum", 1)))
    if schema.get("format") == "date":
        return "2030-06-01"
    if schema.get("format") == "date-time":
        return "2030-06-01T10:00:00+08:00"
    if schema.get("format") == "email":
        return "probe@example.com"
    if EXAMPLES.get(name):
        return EXAMPLES[name]
    return "x" * max(1, schema.get("minLength", 1))


def _valid_object(schema: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    body = {n: _valid(n, s, ids) for n, s in schema.get("properties", {}).items()}
    if "listing_id" in body and "product_id" in body:
        del body["listing_id"]  # an order line names one of the two
    return body


def _bad_values(name: str, schema: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    """(label, value) pairs that must each be refused with a 4xx."""
    schema = _resolve(schema)
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        if high is not None:
            yield "max+1", high + 1
        if low is not None:
            yield "min-1", low - 1
        yield "2**63", 2**63
        yield "-2**63-1", -(2**63) - 1
        yield "10**30", 10**30
    elif kind == "string" and schema.get("format") in YEAR_1:
        yield "year 1", YEAR_1[schema["format"]]
        yield "year 9999", YEAR_9999[schema["format"]]
    elif kind == "string" and "enum" not in schema:
        if "maxLength" in schema:
            yield "maxLength+1", "x" * (schema["maxLength"] + 1)
        if where == "json":
            yield "lone surrogate", "ok\ud800"
        if where == "path":
            yield "past the path's bound", "x" * 300
        if "pattern" in schema and name in EXAMPLES and where != "header":
            yield "trailing newline", f"{EXAMPLES[name]}\n"
        if schema.get("minLength", 0) >= 1 and "pattern" not in schema and name != "password":
            yield "blank", " " * max(3, schema["minLength"])


def _fields(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[Any]:
    """(path of keys, name, schema) of every scalar in a JSON body schema."""
    schema = _resolve(schema)
    for name, inner in schema.get("properties", {}).items():
        inner = _resolve(inner)
        if inner.get("type") == "object":
            yield from _fields(inner, (*prefix, name))
        elif inner.get("type") == "array":
            item = _resolve(inner["items"])
            if item.get("type") == "object":
                yield from _fields(item, (*prefix, name, 0))
            else:
                yield (*prefix, name, 0), name, item
        else:
            yield (*prefix, name), name, inner


def _set(body: Any, keys: tuple[Any, ...], value: Any) -> None:
    for key in keys[:-1]:
        body = body[key]
    body[keys[-1]] = value


# ---------------------------------------------------------------------------- the test


def _row_counts() -> dict[str, int]:
    return {
        table.name: db.session.scalar(select(func.count()).select_from(table))
        for table in db.metadata.sorted_tables
    }


def _cases(method: str, path: str, ids: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    operation = SPEC["paths"][path][method]
    params = operation.get("parameters", []) + SPEC["paths"][path].get("parameters", [])
    good_params = {(p["in"], p["name"]): _valid(p["name"], p["schema"], ids) for p in params}
    body_schema = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ).get("schema")
    good_body = _valid_object(_resolve(body_schema), ids) if body_schema else None

    def request(params: dict[Any, Any], body: Any) -> dict[str, Any]:
        url = path
        query, headers = [], {}
        for (where, name), value in params.items():
            if value is None:
                continue
            if where == "path":
                url = url.replace("{" + name + "}", quote(str(value), safe=""))
            elif where == "query":
                query.append(f"{quote(name)}={quote(str(value), safe='')}")
            elif where == "header":
                headers[name] = str(value)
        if query:
            url += "?" + "&".join(query)
        data = None if body is None else json.dumps(body).encode()
        return {"url": url, "headers": headers, "data": data}

    for param in params:
        key = (param["in"], param["name"])
        for label, value in _bad_values(param["name"], param["schema"], param["in"]):
            yield (
                f"{param['in']} {param['name']}: {label}",
                request({**good_params, key: value}, good_body),
            )
    for keys, name, schema in _fields(body_schema or {}):
        for label, value in _bad_values(name, schema, "json"):
            body = copy.deepcopy(good_body)
            _set(body, keys, value)
            where = ".".join(map(str, keys))
            yield f"body {where}: {label}", request(good_params, body)


@pytest.mark.parametrize(
    ("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS]
)
def test_no_bad_value_in_any_field_makes_a_500_a_write_or_a_logged_error(
    client, world, caplog, method, path
):
    failures = []
    counter = itertools.count()
    for label, request in _cases(method, path, world["ids"]):
        next(counter)
        before = _row_counts()
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            response = client.open(
                request["url"],
                method=method.upper(),
                data=request["data"],
                headers={
                    **world["headers"],
                    "Content-Type": "application/json",
                    **request["headers"],
                },
            )
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        problem = response.mimetype == "application/problem+json"
        if not (400 <= response.status_code < 500 and problem) or errors:
            failures.append(
                f"{label}: {response.status_code} {response.get_data(as_text=True)[:200]}"
            )
        elif _row_counts() != before:
            failures.append(f"{label}: refused ({response.status_code}) but wrote rows")
    assert not failures, "\n".join(failures)


def test_the_probe_reaches_every_kind_of_field():
    """The cases above are not vacuous: every operation with input yields some."""
    ids = {"product_id": 1}
    kinds = set()
    for method, path in OPERATIONS:
        for label, _ in _cases(method, path, ids):
            kinds.add(label.rsplit(": ", 1)[1])
    assert {"max+1", "10**30", "maxLength+1", "lone surrogate", "year 1", "year 9999"} <= kinds
    assert {"trailing newline", "blank"} <= kinds
