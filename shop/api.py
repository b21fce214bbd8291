"""The flask-smorest Api object: request validation and the OpenAPI document in one place.

Every blueprint is a ``shop.api.Blueprint``; every error response is documented as
``application/problem+json`` with ``ProblemSchema``.
"""

from __future__ import annotations

import http
from typing import Any

import marshmallow as ma
from flask import request
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.utils import prepare_response
from werkzeug.routing import IntegerConverter

from shop.errors import PROBLEM_JSON, NotFound, ValidationFailed


class Blueprint(_Blueprint):
    """flask-smorest's Blueprint, parsing each request with one schema instance.

    Given a schema class, webargs builds a new instance for every request, and each
    new instance deep-copies its fields and its nested schemas: on the order
    endpoint that was a fifth of the time spent. An instance is built once here and
    shared (loading keeps no state on the schema).
    """

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(schema, type) and issubclass(schema, ma.Schema):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)


class ProblemSchema(ma.Schema):
    type = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    errors = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()))

    class Meta:
        unknown = ma.INCLUDE


class Api(_Api):
    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        """Errors are handled by ``shop.errors.register``, not by flask-smorest."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (problem+json)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class IdConverter(IntegerConverter):
    """``<int:id>`` in every route: a database id, 1 … 2³¹−1. Anything else is a 404,
    never a query that overflows the column."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def id_param_schema(converter: IdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def _nul_field(value: Any, path: str) -> str | None:
    """The dotted path of the first text holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, inner in items:
        where = f"{path}.{key}" if path else str(key)
        if "\x00" in str(key):
            return where
        found = _nul_field(inner, where)
        if found:
            return found
    return None


def refuse_nul_characters() -> None:
    """No text we store may hold a NUL: PostgreSQL cannot store one, and no person typed it.

    One guard for every endpoint, before any schema sees the input: a 404 in the path,
    a 422 naming the field in the query string, form fields or JSON body.
    """
    if "\x00" in request.path:
        raise NotFound("No such resource.")
    sources: list[Any] = [request.args.to_dict(flat=False)]
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        sources.append(request.form.to_dict(flat=False))
    # In JSON a NUL can only arrive as the escape \u0000: look for it in the raw bytes
    # before paying for a second parse of every body (webargs parses it again anyway).
    if request.is_json and b"\\u0000" in request.get_data(cache=True):
        sources.append(request.get_json(silent=True))
    for source in sources:
        field = _nul_field(source, "")
        if field is not None:
            raise ValidationFailed(
                "Text may not contain NUL characters.",
                {field or "_schema": ["NUL character in the input."]},
            )


def install_converters(app: Any, api: Api) -> None:
    """Make ``<int:…>`` the bounded id converter, in routing and in the OpenAPI document."""
    app.url_map.converters["int"] = IdConverter
    api.register_converter(IdConverter, id_param_schema)


OPENAPI_CONFIG = {
    "API_TITLE": "Shanhuo",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": None,
    "OPENAPI_REDOC_PATH": None,
    "API_SPEC_OPTIONS": {
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    },
}


class Int(ma.fields.Integer):
    """A JSON integer: ``12.5``, ``12.0`` and ``"12"`` are refused, never truncated."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)


class Fen(Int):
    """Money: an integer number of fen (1/100 CNY)."""


class ListQuery(ma.Schema):
    """``?limit=&cursor=`` of every list endpoint."""

    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    cursor = ma.fields.String(load_default=None, allow_none=True)


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """``{"items": [...], "next_cursor": str|null}`` around an item schema."""
    return type(
        name,
        (ma.Schema,),
        {
            "items": ma.fields.List(ma.fields.Nested(item), required=True),
            "next_cursor": ma.fields.String(allow_none=True, required=True),
        },
    )
