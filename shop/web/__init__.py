"""The server-rendered pages for people on phones: shared layout, sign-in, CSRF, the
message catalog, money and time filters, and HTML error pages.

``init_pages(app, blueprints)`` registers the page blueprints (plain Flask blueprints,
outside the OpenAPI document). Only they are CSRF-protected and only they answer errors
with an HTML page: the JSON API keeps bearer tokens and problem+json.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, flash, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from shop import errors
from shop.db import db
from shop.errors import DomainError
from shop.web import format as fmt
from shop.web.auth import signed_in_user
from shop.web.messages import DEFAULT_LANGUAGE, LANGUAGES, MESSAGES, alone, markup, text

log = logging.getLogger(__name__)

csrf = CSRFProtect()

LANG_COOKIE = "lang"
#: paths that never get an HTML error page
API_PREFIXES = ("/api/", "/media/", "/healthz", "/readyz")

#: Content-Security-Policy of every page: our own scripts and styles only
CSP = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def page_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint of pages: CSRF-checked forms, page headers, HTML error pages. Its
    ``templates/`` folder is searched (name templates ``<package>/<page>.html``)."""
    blueprint = Blueprint(name, import_name, template_folder="templates")
    blueprint.before_request(_before_page)
    blueprint.after_request(_after_page)
    blueprint.register_error_handler(DomainError, _domain_error_page)
    blueprint.register_error_handler(HTTPException, _http_error_page)
    blueprint.register_error_handler(Exception, _unexpected_error_page)
    return blueprint


def init_pages(app: Flask, blueprints: Iterable[Blueprint]) -> None:
    """Register page blueprints (made by ``page_blueprint``) and what they share."""
    production = app.config.get("SHANHUO_ENV") == "production"
    app.config["SESSION_COOKIE_NAME"] = "shanhuo_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = production
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(days=14)
    # Forms are checked only where a page blueprint asks (``protect``), never on the API.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    # A streamer's console stays open for a whole show: tokens last the session's life.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)
    csrf.init_app(app)

    app.jinja_env.filters.update(
        yuan=fmt.yuan,
        yuan_per_kg=fmt.yuan_per_kg,
        kg=fmt.kg,
        percent_bp=fmt.percent_bp,
        factor_bp=fmt.factor_bp,
        local=fmt.local,
        day=fmt.day,
    )
    app.jinja_env.globals.update(
        t=_t, tt=_tt, page_lang=current_lang, page_user=signed_in_user, grade_label=_grade_label
    )

    names = set()
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
        names.add(blueprint.name)
    app.extensions["shanhuo.page_blueprints"] = frozenset(names)

    # Routing errors (no blueprint yet) on page paths get the HTML page too.
    for code in (404, 405):
        app.register_error_handler(code, _routing_error)


# ------------------------------------------------------------------ per request


def current_lang() -> str:
    """``?lang=`` if given, else the ``lang`` cookie, else what the browser prefers of
    Chinese and English (``Accept-Language``), else zh-CN."""
    asked = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    if not asked:
        best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
        asked = "en" if best == "en" else DEFAULT_LANGUAGE
    return _language(asked)


def _language(asked: str | None) -> str:
    if asked in ("en", "en-US", "en-GB"):
        return "en"
    if asked in LANGUAGES:
        return asked
    return DEFAULT_LANGUAGE


def _t(key: str, **fields: Any) -> Any:
    return markup(key, current_lang(), **fields)


def _tt(key: str, **fields: Any) -> str:
    """Plain text (attributes, titles)."""
    return text(key, current_lang(), **fields)


def _grade_label(grade: str) -> Any:
    """A grade in the page's language when the catalog knows it, else as stored."""
    key = f"grade_{grade}"
    return markup(key, current_lang()) if key in MESSAGES else grade


def _before_page() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


def _after_page(response: Response) -> Response:
    asked = request.args.get("lang")
    if asked:
        response.set_cookie(
            LANG_COOKIE,
            _language(asked),
            max_age=365 * 24 * 3600,
            samesite="Lax",
            httponly=True,
            secure=request.is_secure,
        )
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def flash_message(key: str, category: str = "info", **fields: Any) -> None:
    flash(markup(key, current_lang(), **fields), category)


def flash_refusal(error: DomainError, key: str | None = None) -> None:
    """A rule said no: the page's own words for it when it has them (``key``), else the
    kind of refusal and the rule's own words, both in the page's language (the detail
    is translated through the gettext catalog: ``shop.i18n``)."""
    if key is not None:
        flash(markup(key, current_lang()), "error")
        return
    key = f"error_{error.status}" if f"error_{error.status}" in _KNOWN else "error_400"
    flash(f"{alone(key, current_lang())}：{error.detail}", "error")


# ------------------------------------------------------------------ error pages


def error_page(
    status: int,
    title_key: str,
    detail: str | None = None,
    note_key: str | None = None,
    **context: Any,
) -> tuple[str, int]:
    """The HTML error page; ``detail`` is the (English) message of the rule that said no."""
    db.session.rollback()
    page = render_template(
        "web/error.html",
        status=status,
        title_key=title_key,
        detail=detail,
        note_key=note_key,
        **context,
    )
    return page, status


def _title_key(status: int) -> str:
    return f"error_{status}" if f"error_{status}" in _KNOWN else "error_400"


_KNOWN = {"error_400", "error_403", "error_404", "error_405", "error_409", "error_422"}
_KNOWN |= {"error_429", "error_500", "error_503"}


def _domain_error_page(error: DomainError) -> Any:
    return error_page(error.status, _title_key(error.status), error.detail)


def _http_error_page(error: HTTPException) -> Any:
    if isinstance(error, CSRFError):
        return error_page(400, "error_400", note_key="csrf_failed")
    status = error.code or 500
    detail = None if status in (403, 404, 405) else error.description
    return error_page(status, _title_key(status), detail)


def _unexpected_error_page(error: Exception) -> Any:
    if isinstance(error, HTTPException):  # pragma: no cover - routed to _http_error_page
        return _http_error_page(error)
    detail = errors.database_unavailable(error)
    if detail is not None:  # the database does not answer: it passes, retry
        # No signed-in user in the header: looking them up needs the database.
        page, status = error_page(503, "error_503", detail, page_user=lambda: None)
        return page, status, {"Retry-After": "1"}
    log.exception("page failed: %s %s", request.method, request.path)
    return error_page(500, "error_500")


def is_page_request(app_blueprints: frozenset[str]) -> bool:
    if request.blueprint is not None:
        return request.blueprint in app_blueprints
    return not request.path.startswith(API_PREFIXES)


def _routing_error(error: HTTPException) -> Any:
    from flask import current_app

    if not is_page_request(current_app.extensions.get("shanhuo.page_blueprints", frozenset())):
        return errors.handle_http_exception(error)
    return _http_error_page(error)
