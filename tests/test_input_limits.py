"""Each kind of input that once answered 500, refused with a 4xx where it enters; and the
rule behind the bounds: they are read from the model columns, in one place."""

from __future__ import annotations

import logging

import marshmallow as ma
import pytest
from sqlalchemy import func, select

from shop.accounts.models import User
from shop.api import Blueprint, Int
from shop.catalog.models import Product
from shop.db import db
from shop.inputs import FullMatch, Input, integer_bounds
from shop.payments.models import Payment
from shop.request_guard import MAX_JSON_DEPTH, json_depth
from tests.test_bad_input import OPERATIONS, SPEC


def errors_logged(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


# ---------------------------------------------------------------------------- JSON depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_json_nested_too_deep_is_a_400_before_anyone_signs_in(client, caplog, depth):
    body = "[" * depth + "]" * depth
    response = client.post(
        "/api/v1/auth/register", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "malformed"
    assert not errors_logged(caplog)


def test_deep_json_inside_a_field_of_an_authenticated_request_is_a_400(client, auth, caplog):
    _, headers = auth("admin")
    nested = '{"a":' * 50_000 + "1" + "}" * 50_000
    body = '{"name": "w", "village": ' + nested + "}"
    response = client.post(
        "/api/v1/workshops", data=body, headers={**headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json["type"] == "malformed"
    assert not errors_logged(caplog)


def test_brackets_inside_strings_do_not_count_as_depth():
    assert json_depth(b'{"a": "[[[[[[{{{{\\"[[[["}') == 1
    assert json_depth(b'[[1], {"x": [2]}]') == 3
    assert json_depth(b"") == 0


def test_a_number_python_refuses_to_convert_is_a_400_not_a_500(client, caplog):
    body = '{"email": "a@b.cn", "password": ' + "1" * 5000 + ', "display_name": "x"}'
    response = client.post(
        "/api/v1/auth/register", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json["type"] == "malformed"
    assert not errors_logged(caplog)


# ---------------------------------------------------------------------------- surrogates


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            '{"email": "a@b.cn", "password": "long enough", "display_name": "x\\ud800"}',
            "display_name",
        ),
        ('{"email": "a@b.cn", "password": "long enough\\udfff", "display_name": "x"}', "password"),
        (
            '{"email": "a@b.cn", "password": "long enough", "display_name": "x", "\\uDC00": 1}',
            "\\udc00",  # shown escaped: the answer itself must be valid UTF-8
        ),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_the_field_and_writes_nothing(client, caplog, body, field):
    before = user_count()
    response = client.post(
        "/api/v1/auth/register", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json["type"] == "validation"
    assert field in response.json["errors"]
    assert user_count() == before
    assert not errors_logged(caplog)


def test_a_surrogate_pair_escaped_in_json_is_an_ordinary_character(client):
    body = '{"email": "emoji@b.cn", "password": "long enough", "display_name": "笑 \\ud83d\\ude00"}'
    response = client.post(
        "/api/v1/auth/register", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 201
    assert response.json["display_name"] == "笑 😀"


# ---------------------------------------------------------------------------- cursors

LISTS = [
    (m, p)
    for m, p in OPERATIONS
    if any(q["name"] == "cursor" for q in SPEC["paths"][p][m].get("parameters", []))
]


@pytest.mark.parametrize("cursor", ["9" * 30, str(2**31), str(2**63), "-" + "9" * 20])
@pytest.mark.parametrize(("method", "path"), LISTS, ids=[p for _, p in LISTS])
def test_a_cursor_outside_the_id_column_is_a_422_on_every_list(
    client, auth, caplog, method, path, cursor
):
    _, headers = auth("admin", "buyer", "farmer", "villager")
    url = path.replace("{workshop_id}", "1")
    response = client.get(url, query_string={"cursor": cursor}, headers=headers)

    assert response.status_code in (404, 422), response.json
    if response.status_code == 422:
        assert "cursor" in response.json["errors"]
    assert not errors_logged(caplog)


def test_a_market_price_cursor_with_a_huge_id_is_a_422(client):
    response = client.get(
        "/api/v1/market-prices", query_string={"cursor": "2030-01-01:" + "9" * 30}
    )
    assert response.status_code == 422


def test_the_list_operations_are_found():
    assert ("get", "/api/v1/orders") in LISTS
    assert ("get", "/api/v1/products") in LISTS


# ---------------------------------------------------------------------------- emails


def test_an_email_that_grows_past_its_column_when_lower_cased_is_refused(client, auth, caplog):
    """ "İ" lower-cases to two characters: 254 before, more after. PostgreSQL refused the
    insert (a 500); the length is now checked on the stored form."""
    _, headers = auth("admin")
    email = "İ" * 60 + "@" + ".".join(["a" * 60] * 3) + ".cn"
    assert len(email) <= 254 < len(email.lower())
    before = user_count()
    response = client.post(
        "/api/v1/admin/users",
        json={"email": email, "password": "long enough", "display_name": "x", "roles": ["buyer"]},
        headers=headers,
    )

    assert response.status_code == 422
    assert "email" in response.json["errors"]
    assert user_count() == before
    assert not errors_logged(caplog)


def test_an_email_is_stored_trimmed_and_lower_case(client):
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "  Mixed.Case@Example.CN ", "password": "long enough", "display_name": "x"},
    )
    assert response.status_code == 201
    assert response.json["email"] == "mixed.case@example.cn"


# ---------------------------------------------------------------------------- names, patterns


@pytest.mark.parametrize("name", ["   ", "\t\n", "　"])
def test_a_whitespace_only_name_is_refused(client, name):
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "blank@b.cn", "password": "long enough", "display_name": name},
    )
    assert response.status_code == 422
    assert "display_name" in response.json["errors"]


def test_a_name_is_stored_without_its_outer_spaces(client, auth):
    _, headers = auth("admin")
    response = client.post(
        "/api/v1/workshops", json={"name": "  香信谷  ", "village": " 竹口镇"}, headers=headers
    )
    assert response.status_code == 201
    assert (response.json["name"], response.json["village"]) == ("香信谷", "竹口镇")


def test_a_pattern_must_match_the_whole_value_not_up_to_a_trailing_newline():
    class Probe(ma.Schema):
        loose = ma.fields.String(validate=ma.validate.Regexp(r"^\S+$"))
        strict = ma.fields.String(validate=FullMatch(r"^\S+$"))

    assert Probe().load({"loose": "SKU-1\n"}) == {"loose": "SKU-1\n"}  # why FullMatch exists
    with pytest.raises(ma.ValidationError):
        Probe().load({"strict": "SKU-1\n"})


def test_a_sku_with_a_trailing_newline_is_refused(client, auth):
    _, headers = auth("admin")
    body = {
        "sku": "SKU-NL\n",
        "name": "n",
        "category": "mushroom",
        "unit_label": "bag",
        "unit_weight_g": 500,
        "price_fen": 100,
        "stock": 1,
    }
    response = client.post("/api/v1/products", json=body, headers=headers)
    assert response.status_code == 422
    assert "sku" in response.json["errors"]


# ---------------------------------------------------------------------------- dates


@pytest.mark.parametrize("day", ["0001-01-01", "1999-12-31", "2101-01-01", "9999-12-31"])
@pytest.mark.parametrize(
    "path",
    ["/api/v1/villagers/me/earnings", "/api/v1/workshops/report", "/api/v1/workshops/1/report"],
)
def test_a_report_range_outside_2000_to_2100_is_a_422(client, auth, caplog, path, day):
    _, headers = auth("admin", "villager")
    response = client.get(path, query_string={"from": day, "to": day}, headers=headers)

    assert response.status_code == 422
    assert not errors_logged(caplog)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"])
def test_a_schedule_in_year_1_or_9999_is_a_422(client, auth, caplog, when):
    _, headers = auth("streamer")
    response = client.post(
        "/api/v1/live-sessions", json={"title": "t", "scheduled_at": when}, headers=headers
    )
    assert response.status_code == 422
    assert "scheduled_at" in response.json["errors"]
    assert not errors_logged(caplog)


@pytest.mark.parametrize(
    ("first", "last"), [("2000-01-01", "2000-01-31"), ("2100-12-01", "2100-12-31")]
)
def test_dates_at_the_ends_of_the_range_are_accepted(client, auth, first, last):
    _, headers = auth("admin", "villager")
    response = client.get(
        "/api/v1/villagers/me/earnings", query_string={"from": first, "to": last}, headers=headers
    )
    assert response.status_code == 200


# ---------------------------------------------------------------------------- bounds from columns


def test_an_integer_field_takes_the_range_of_its_column_type():
    class ProductProbe(Input):
        price_fen = Int()

        class Meta:
            model = Product

    class PaymentProbe(Input):
        amount_fen = Int()

        class Meta:
            model = Payment

    assert integer_bounds(Product.__table__.c.price_fen.type) == (-(2**31), 2**31 - 1)
    with pytest.raises(ma.ValidationError):
        ProductProbe().load({"price_fen": 2**31})
    assert PaymentProbe().load({"amount_fen": 2**31}) == {"amount_fen": 2**31}
    with pytest.raises(ma.ValidationError):
        PaymentProbe().load({"amount_fen": 2**63})


def test_a_string_field_takes_the_length_of_its_column_or_a_named_one():
    class Probe(Input):
        sku = ma.fields.String()
        title = ma.fields.String(metadata={"column": User.display_name})

        class Meta:
            model = Product

    Probe().load({"sku": "x" * 64, "title": "x" * 100})
    with pytest.raises(ma.ValidationError) as refused:
        Probe().load({"sku": "x" * 65, "title": "x" * 101})
    assert set(refused.value.messages) == {"sku", "title"}


@pytest.mark.parametrize(
    "field",
    [
        ma.fields.Integer(),
        ma.fields.String(),
        ma.fields.List(ma.fields.Integer(validate=ma.validate.Range(0, 1))),
    ],
)
def test_a_request_field_stored_in_no_column_and_without_bounds_stops_the_app_starting(field):
    probe = type("Probe", (Input,), {"unbounded": field})
    with pytest.raises(TypeError, match="unbounded"):
        probe()


def test_every_blueprint_schema_must_be_an_input():
    class Loose(ma.Schema):
        anything = ma.fields.String()

    with pytest.raises(TypeError, match="Input"):
        Blueprint("probe", __name__).arguments(Loose)


def test_the_openapi_document_bounds_every_request_integer_and_string():
    """What the schemas enforce is what the document promises (schemathesis reads it)."""
    unbounded = []

    def walk(schema, where):
        while "$ref" in schema:
            schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        kind = schema.get("type")
        if kind == "object":
            for name, inner in schema.get("properties", {}).items():
                walk(inner, f"{where}.{name}")
        elif kind == "array":
            walk(schema["items"], where + "[]")
        elif (kind == "integer" and not ("minimum" in schema and "maximum" in schema)) or (
            kind == "string"
            and "format" not in schema
            and not ("maxLength" in schema or "enum" in schema)
        ):
            unbounded.append(where)

    for method, path in OPERATIONS:
        operation = SPEC["paths"][path][method]
        for param in operation.get("parameters", []):
            if param["name"] != "Stripe-Signature":
                walk(param["schema"], f"{method} {path} {param['name']}")
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            walk(body["schema"], f"{method} {path} body")
    assert not unbounded


def test_a_path_id_past_the_column_is_a_404(client, auth):
    _, headers = auth("admin")
    for value in (2**31, 2**63, 10**30):
        response = client.get(f"/api/v1/products/{value}", headers=headers)
        assert response.status_code == 404
