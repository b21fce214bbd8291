"""The flask-smorest Api object: request validation and the OpenAPI document in one place.

Every blueprint is a ``shop.api.Blueprint``; every error response is documented as
``application/problem+json`` with ``ProblemSchema``.
"""

from __future__ import annotations

import http
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.utils import prepare_response
from werkzeug.routing import IntegerConverter

from shop.errors import PROBLEM_JSON
from shop.inputs import Input, integer_bounds


class Blueprint(_Blueprint):
    """flask-smorest's Blueprint, parsing each request with one schema instance.

    Given a schema class, webargs builds a new instance for every request, and each
    new instance deep-copies its fields and its nested schemas: on the order
    endpoint that was a fifth of the time spent. An instance is built once here and
    shared (loading keeps no state on the schema). Every request schema is an
    ``Input``, so each of its fields is bounded by the column it is stored in.
    """

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(schema, type) and issubclass(schema, ma.Schema):
            schema = schema()
        if not isinstance(schema, Input):
            # Input bounds every field by its column (shop.inputs): no request escapes it.
            raise TypeError(f"{type(schema).__name__}: a request schema must derive from Input")
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


#: Every id column is an ``Integer`` primary key: path ids are bounded by what it holds.
MAX_ID = integer_bounds(sa.Integer())[1]


class IdConverter(IntegerConverter):
    """``<int:id>`` in every route: a database id, 1 … MAX_ID. Anything else is a 404,
    never a query that overflows the column."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def id_param_schema(converter: IdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": converter.min, "maximum": converter.max}


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


class ListQuery(Input):
    """``?limit=&cursor=`` of every list endpoint."""

    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    #: opaque; the longest one given out is ``YYYY-MM-DD:`` and a 64-bit id
    cursor = ma.fields.String(
        load_default=None, allow_none=True, validate=ma.validate.Length(max=40)
    )


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
