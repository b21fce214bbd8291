"""The flask-smorest Api object: request validation and the OpenAPI document in one place.

Every blueprint is a ``shop.api.Blueprint``; every error response is documented as
``application/problem+json`` with ``ProblemSchema``.
"""

from __future__ import annotations

import copy
import functools
import http
import inspect
from typing import Any

import flask
import marshmallow as ma
import sqlalchemy as sa
from flask_smorest import Api as _Api
from flask_smorest import Blueprint as _Blueprint
from flask_smorest.utils import prepare_response
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser
from werkzeug.routing import IntegerConverter

from shop.errors import PROBLEM_JSON
from shop.inputs import Input, integer_bounds


class Parser(FlaskParser):
    """webargs' Flask parser, with the work of each request cut to what our endpoints use.

    webargs' ``parse`` prepares every request the same general way: it resolves the
    argument map, the loader and the ``unknown`` rule, and calls its hooks. For an
    argument given as a schema instance (every ``Blueprint.arguments``: see below),
    with no ``validate=``, the same is resolved here once, when the endpoint is
    decorated; a request then only loads its location's data (webargs' own loaders,
    so a body that is not JSON is refused as before) and the schema's ``load``. A
    ``ValidationError`` goes to webargs' own error path (``_on_validation_error``):
    the same 422, with the same words, as ``parse`` gives (README, "The seventh
    round").
    """

    def use_args(  # type: ignore[override]
        self,
        argmap: Any,
        req: Any = None,
        *,
        location: str | None = None,
        unknown: str | None = webargs_core._UNKNOWN_DEFAULT_PARAM,
        as_kwargs: bool = False,
        arg_name: str | None = None,
        validate: Any = None,
        error_status_code: int | None = None,
        error_headers: Any = None,
    ) -> Any:
        general = functools.partial(
            super().use_args,
            argmap,
            req,
            location=location,
            unknown=unknown,
            as_kwargs=as_kwargs,
            arg_name=arg_name,
            validate=validate,
            error_status_code=error_status_code,
            error_headers=error_headers,
        )
        plain = req is None and not as_kwargs and arg_name is None and validate is None
        if not plain or not isinstance(argmap, ma.Schema) or self.error_callback is not None:
            return general()
        schema = argmap
        where = location or self.location
        load_location = self._get_loader(where)
        if unknown == webargs_core._UNKNOWN_DEFAULT_PARAM:
            unknown = self.DEFAULT_UNKNOWN_BY_LOCATION.get(where)
        load_kwargs: dict[str, Any] = {"unknown": unknown} if unknown else {}
        on_error = functools.partial(
            self._on_validation_error,
            location=where,
            error_status_code=error_status_code,
            error_headers=error_headers,
        )

        def decorate(func: Any) -> Any:
            if inspect.iscoroutinefunction(func):
                return general()(func)

            @functools.wraps(func)
            def parsed(*args: Any, **kwargs: Any) -> Any:
                request = flask.request._get_current_object()  # type: ignore[attr-defined]
                data = load_location(request, schema)
                try:
                    value = schema.load({} if data is webargs_core.missing else data, **load_kwargs)
                except ma.ValidationError as error:
                    on_error(error, request, schema)
                    raise
                return func(*args, value, **kwargs)

            return parsed

        return decorate


class Blueprint(_Blueprint):
    """flask-smorest's Blueprint, parsing each request with one schema instance, in one
    layer per argument.

    Given a schema class, webargs builds a new instance for every request, and each
    new instance deep-copies its fields and its nested schemas: on the order
    endpoint that was a fifth of the time spent. An instance is built once here and
    shared (loading keeps no state on the schema). Every request schema is an
    ``Input``, so each of its fields is bounded by the column it is stored in.

    flask-smorest puts a layer around the endpoint for each ``arguments`` and each
    ``alt_response``, that only hands the call on (``ensure_sync``); the document is
    what they are for. Here they write the same document and add no layer: a
    ``arguments`` is one layer (the parse), an ``alt_response`` none (the endpoints
    are not coroutines). The document is what flask-smorest writes, and every input
    gets the answer it gives (``tests/test_api_layers.py``).
    """

    ARGUMENTS_PARSER = Parser()

    def arguments(
        self,
        schema: Any,
        *,
        location: str = "json",
        content_type: str | None = None,
        required: bool = True,
        description: str | None = None,
        example: Any = None,
        examples: Any = None,
        **kwargs: Any,
    ) -> Any:
        if isinstance(schema, type) and issubclass(schema, ma.Schema):
            schema = schema()
        if not isinstance(schema, Input):
            # Input bounds every field by its column (shop.inputs): no request escapes it.
            raise TypeError(f"{type(schema).__name__}: a request schema must derive from Input")
        # flask-smorest's ArgumentsMixin.arguments, less its pass-through layer
        parameters: dict[str, Any] = {"in": location, "required": required, "schema": schema}
        optional = {
            "content_type": content_type,
            "example": example,
            "examples": examples,
            "description": description,
        }
        parameters.update((k, v) for k, v in optional.items() if v is not None)
        status = kwargs.get("error_status_code", self.ARGUMENTS_PARSER.DEFAULT_VALIDATION_STATUS)
        use_args = self.ARGUMENTS_PARSER.use_args(schema, location=location, **kwargs)

        def decorate(func: Any) -> Any:
            parsed = use_args(func)
            parsed._apidoc = copy.deepcopy(getattr(func, "_apidoc", {}))
            docs = parsed._apidoc.setdefault("arguments", {})
            docs.setdefault("parameters", []).append(parameters)
            docs.setdefault("responses", {})[status] = http.HTTPStatus(status).name
            return parsed

        return decorate

    def alt_response(self, *args: Any, **kwargs: Any) -> Any:
        document = super().alt_response(*args, **kwargs)

        def decorate(func: Any) -> Any:
            documented = document(func)
            if inspect.iscoroutinefunction(func):
                return documented
            func._apidoc = documented._apidoc
            return func

        return decorate


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
