"""Domain errors and the one handler that turns every error into problem+json (RFC 9457)."""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from shop.i18n import N_, Words, gettext, translate_errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: problem+json bodies written as the app's JSON provider writes (``create_app``: keys
#: in their order, no ASCII escapes), by one encoder built once: a flash sale answers
#: thousands of refusals a second, and Flask's ``json.dumps`` builds one per call.
_PROBLEM_ENCODER = json.JSONEncoder(ensure_ascii=False, default=DefaultJSONProvider.default)


class DomainError(Exception):
    """A rule said no. Services raise these; the handler maps them to problem+json.

    On a hot path, raise one that is in a local variable as ``try: raise error`` /
    ``finally: del error``. The traceback keeps the raising frame, and a frame whose
    local names its own exception is a reference cycle: the request's whole context
    (73 objects a refusal) then waits for the garbage collector, whose young
    collections under a flash sale's refusals took 5-14 ms each.
    """

    type: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = N_("Request refused")
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: Words | None = None, **extra: Any) -> None:
        # Kept lazy: a refusal's words are looked up in the catalog once, when answered.
        super().__init__(self.title if detail is None else detail)
        self._detail = detail
        self.extra = extra

    @property
    def detail(self) -> str:
        """The rule's words in the reader's language (the request's locale)."""
        return gettext(self.title) if self._detail is None else str(self._detail)


class ValidationFailed(DomainError):
    type = "validation"
    status = 422
    title = N_("The request is not valid")

    def __init__(self, detail: Words | None = None, errors: dict[str, list[str]] | None = None):
        super().__init__(detail, errors=errors or {})


class Malformed(DomainError):
    """The body cannot be read at all (not JSON, nested too deep): nothing to validate."""

    type = "malformed"
    status = 400
    title = N_("Malformed request body")


class Unauthorized(DomainError):
    type = "unauthorized"
    status = 401
    title = N_("Authentication required")


class Forbidden(DomainError):
    type = "forbidden"
    status = 403
    title = N_("Not allowed")


class NotFound(DomainError):
    type = "not-found"
    status = 404
    title = N_("Not found")


class Conflict(DomainError):
    type = "conflict"
    status = 409
    title = N_("Conflict with the current state")


class OutOfStock(DomainError):
    type = "out-of-stock"
    status = 409
    title = N_("Not enough stock")


class RateLimited(DomainError):
    type = "rate-limited"
    status = 429
    title = N_("Too many requests")

    def __init__(self, detail: Words | None = None, *, retry_after_s: int = 60) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, retry_after_s)
        # per instance: how long depends on the limit that was hit
        self.headers = {"Retry-After": str(self.retry_after_s)}  # type: ignore[misc]


class Unavailable(DomainError):
    """Our side is full or a dependency does not answer; nothing was changed."""

    type = "unavailable"
    status = 503
    title = N_("Service unavailable")
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}


# Short stable `type` words for the HTTP errors werkzeug raises itself.
HTTP_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
}


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    response = Response(_PROBLEM_ENCODER.encode(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten_webargs(messages: dict[str, Any]) -> dict[str, list[str]]:
    """webargs reports ``{location: {field: [msg]}}``; clients want ``{field: [msg]}``."""
    errors: dict[str, list[str]] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                add(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            errors.setdefault(prefix or "_schema", []).extend(value)
        else:
            errors.setdefault(prefix or "_schema", []).append(str(value))

    for location, fields in messages.items():
        if location in ("json", "query", "form", "files", "headers", "view_args"):
            add("", fields)
        else:
            add(location, fields)
    return errors


def _abandon_transaction() -> None:
    """An error ends the request's unit of work: nothing it wrote may be committed later.
    (A request refused before it used the database — from memory — has no session to
    roll back, and none is made for it.)"""
    from shop.db import db

    if db.session.registry.has():
        db.session.rollback()


def handle_domain_error(error: DomainError) -> Response:
    _abandon_transaction()
    extra = dict(error.extra)
    if isinstance(extra.get("errors"), dict):
        extra["errors"] = translate_errors(extra["errors"])
    return problem(
        error.status, error.type, gettext(error.title), error.detail, dict(error.headers), **extra
    )


def handle_http_exception(error: HTTPException) -> Response:
    _abandon_transaction()
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    headers = dict(data.get("headers") or {})
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    if status == 400 and messages and "json" in messages and _is_bad_json(messages["json"]):
        return problem(
            400,
            "malformed",
            gettext("Malformed JSON"),
            gettext("The request body is not valid JSON."),
        )
    if status == 422 and messages:
        return problem(
            422,
            "validation",
            gettext("The request is not valid"),
            gettext("Some fields are missing or invalid; see `errors`."),
            errors=translate_errors(_flatten_webargs(messages)),
        )
    title = gettext(error.name)
    detail = gettext(str(data.get("message") or error.description or error.name))
    return problem(status, HTTP_TYPES.get(status, "error"), title, detail, headers)


def _is_bad_json(messages: Any) -> bool:
    return isinstance(messages, list) and any("JSON" in str(m) for m in messages)


def database_unavailable(error: Exception) -> str | None:
    """What to tell the client when ``error`` says the database did not answer
    (refused, reset, timed out, cancelled, every pooled connection busy) or undid the
    transaction to let another through (a deadlock): the server's trouble, and it
    passes — a 503. None for anything else (a bug: 500).

    Logs one warning line, no traceback. Call it before rolling back: it reads whether
    the failure came during a COMMIT, when the change may have been saved after all.
    """
    from shop.db import commit_outcome_unknown, db, is_unavailable, is_undone_by_the_database

    if isinstance(error, PoolTimeout):
        log.warning("database pool exhausted: %s", error)
        return gettext("Too busy to reach the database; nothing was changed. Retry in a moment.")
    if isinstance(error, DBAPIError) and is_undone_by_the_database(error):
        # A deadlock with another request (two processes placing the same key) or a
        # serialization failure: PostgreSQL rolled this transaction back, and the
        # same request sent again goes through (its Idempotency-Key makes that safe).
        log.warning("transaction undone by the database: %s", error.orig)
        return gettext(
            "Another request changed the same data at the same moment; nothing was changed. Retry."
        )
    if not isinstance(error, DBAPIError) or not is_unavailable(error):
        return None
    if commit_outcome_unknown(db.session):
        log.warning("database failed during COMMIT, outcome unknown: %s", error.orig)
        return gettext(
            "The database stopped answering while saving: it is unknown whether the "
            "change was saved. Retry the request; a retry is safe."
        )
    log.warning("database unavailable: %s", error.orig)
    return gettext("The database did not answer; nothing was changed. Retry in a moment.")


def handle_database_error(error: DBAPIError | PoolTimeout) -> Response:
    """503 with Retry-After when the database does not answer; otherwise a 500.

    (The pool pings only idle connections, so one that dies while busy surfaces here;
    SQLAlchemy has already invalidated it and its pool.)"""
    detail = database_unavailable(error)
    if detail is None:
        return handle_unexpected(error)
    _abandon_transaction()
    return _unavailable(detail)


def _unavailable(detail: str) -> Response:
    return problem(
        Unavailable.status,
        Unavailable.type,
        gettext(Unavailable.title),
        detail,
        {"Retry-After": "1"},
    )


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    _abandon_transaction()
    return problem(
        500, "internal", gettext("Internal error"), gettext("Something went wrong on our side.")
    )


def register(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(PoolTimeout, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
