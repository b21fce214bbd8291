"""``shop.api.Blueprint`` parses and documents as flask-smorest's Blueprint does, in
fewer layers: the same OpenAPI document, and for every input the same answer — the
value handed to the endpoint, or the same error, word for word."""

from __future__ import annotations

from typing import Any

import flask_smorest
import marshmallow as ma
import pytest
from flask import Flask
from marshmallow import validate

from shop import errors, i18n
from shop.api import OPENAPI_CONFIG, Api, Blueprint
from shop.inputs import FullMatch, Input, Text


class Line(Input):
    listing_id = ma.fields.Integer(validate=validate.Range(min=1, max=99))
    qty = ma.fields.Integer(required=True, validate=validate.Range(min=1, max=9))


class Body(Input):
    lines = ma.fields.List(
        ma.fields.Nested(Line), required=True, validate=validate.Length(min=1, max=3)
    )
    name = Text(required=True, validate=validate.Length(min=1, max=10))


class Key(Input):
    key = ma.fields.String(
        data_key="Idempotency-Key",
        required=True,
        validate=[validate.Length(min=1, max=20), FullMatch(r"^[\x21-\x7e]+$")],
    )

    class Meta:
        unknown = ma.EXCLUDE


class Query(Input):
    limit = ma.fields.Integer(load_default=5, validate=validate.Range(min=1, max=9))


class Out(ma.Schema):
    seen = ma.fields.Raw()


def build(blueprint_class: type[flask_smorest.Blueprint]) -> tuple[Flask, Api]:
    app = Flask("layers")
    app.config.update(OPENAPI_CONFIG)
    i18n.init_app(app)
    api = Api(app)
    blp = blueprint_class("things", __name__, url_prefix="/things", description="Things")

    @blp.route("/", methods=["POST"])
    @blp.arguments(Body(), description="what to make")
    @blp.arguments(Key(), location="headers")
    @blp.arguments(Query(), location="query")
    @blp.response(201, Out, description="Made")
    @blp.alt_response(200, schema=Out, description="Made before")
    @blp.alt_response(409, response="CONFLICT", description="Taken")
    def make(body: Any, headers: Any, query: Any) -> Any:
        """Make a thing."""
        return {"seen": [body, headers, query]}, 201

    @blp.route("/<int:thing_id>", methods=["PUT"])
    @blp.arguments(Line(), example={"qty": 1})
    @blp.alt_response(201, schema=Out, description="Replaced", success=True)
    def replace(line: Any, thing_id: int) -> Any:
        return {"seen": [line, thing_id]}, 201

    api.register_blueprint(blp)
    errors.register(app)
    return app, api


@pytest.fixture(scope="module")
def apps() -> tuple[tuple[Flask, Api], tuple[Flask, Api]]:
    return build(flask_smorest.Blueprint), build(Blueprint)


def test_the_openapi_document_is_flask_smorests(apps):
    (_, theirs), (_, ours) = apps
    assert ours.spec.to_dict() == theirs.spec.to_dict()


GOOD = {"lines": [{"listing_id": 3, "qty": 2}], "name": " pomelo "}
KEY = {"Idempotency-Key": "k-1"}
JSON = "application/json"


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("POST", "/things/", {"json": GOOD, "headers": KEY}),
        ("POST", "/things/?limit=7", {"json": GOOD, "headers": KEY}),
        ("POST", "/things/?limit=0", {"json": GOOD, "headers": KEY}),
        ("POST", "/things/?limit=x&other=1", {"json": GOOD, "headers": KEY}),
        ("POST", "/things/", {"json": GOOD}),
        ("POST", "/things/", {"json": GOOD, "headers": {"Idempotency-Key": "a b"}}),
        ("POST", "/things/", {"json": GOOD, "headers": {"Idempotency-Key": ""}}),
        ("POST", "/things/", {"headers": KEY}),
        ("POST", "/things/", {"data": "{no", "headers": KEY, "content_type": JSON}),
        ("POST", "/things/", {"data": "lines=1", "headers": KEY, "content_type": "text/plain"}),
        ("POST", "/things/", {"json": [], "headers": KEY}),
        ("POST", "/things/", {"json": None, "headers": KEY}),
        ("POST", "/things/", {"json": {**GOOD, "extra": 1}, "headers": KEY}),
        ("POST", "/things/", {"json": {**GOOD, "name": "   "}, "headers": KEY}),
        ("POST", "/things/", {"json": {**GOOD, "name": 5}, "headers": KEY}),
        ("POST", "/things/", {"json": {"lines": [], "name": "x"}, "headers": KEY}),
        ("POST", "/things/", {"json": {"lines": [{"qty": "2"}], "name": "x"}, "headers": KEY}),
        ("POST", "/things/", {"json": {"lines": [{"qty": 1, "x": 1}], "name": ""}, "headers": KEY}),
        ("POST", "/things/", {"json": {"lines": "no", "name": "x"}, "headers": KEY}),
        ("PUT", "/things/4", {"json": {"qty": 1}}),
        ("PUT", "/things/4", {"json": {"qty": 10, "listing_id": 0}}),
        ("PUT", "/things/4", {"json": {}}),
    ],
)
def test_every_input_gets_flask_smorests_answer(apps, method, path, kwargs):
    (theirs, _), (ours, _) = apps
    expected = theirs.test_client().open(path, method=method, **kwargs)
    answer = ours.test_client().open(path, method=method, **kwargs)
    assert (answer.status_code, answer.get_json()) == (expected.status_code, expected.get_json())
    assert answer.headers.get("Content-Type") == expected.headers.get("Content-Type")
