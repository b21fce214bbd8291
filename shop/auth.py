"""Who is calling: the bearer-token guard every endpoint names.

``@requires("admin", "streamer")`` lets in a user holding any of those roles;
``@requires()`` lets in any signed-in user; ``@public`` marks an endpoint that
anyone may call. A test checks that every endpoint carries one of the two.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from shop.accounts import service
from shop.accounts.models import Caller
from shop.accounts.token_cache import token_cache
from shop.db import db
from shop.errors import Forbidden, Unauthorized
from shop.i18n import _l

F = TypeVar("F", bound=Callable[..., Any])

BEARER_DOC: dict[str, Any] = {"security": [{"bearerAuth": []}]}


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_user() -> Caller:
    """Who signed this request in: id and roles (only inside a ``requires`` endpoint)."""
    return g.user  # type: ignore[no-any-return]


def _document(func: Any, roles: tuple[str, ...] | None) -> None:
    doc = getattr(func, "_apidoc", {})
    manual = doc.setdefault("manual_doc", {})
    if roles is not None:
        manual.update(BEARER_DOC)
        who = ", ".join(roles) if roles else "any signed-in user"
        manual["description"] = (manual.get("description", "") + f"\n\nWho: {who}.").strip()
        responses = doc.setdefault("response", {}).setdefault("responses", {})
        responses.setdefault(401, ["UNAUTHORIZED"])
        if roles:
            responses.setdefault(403, ["FORBIDDEN"])
    func._apidoc = doc
    func._shanhuo_access = roles if roles is not None else "public"


def _caller(token: str) -> Caller | None:
    cache = token_cache(current_app)
    if cache is None:
        return service.caller_for_token(db.session, token)
    return cache.caller(db.session, token, service.caller_and_expiry)


def requires(*roles: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            user = _caller(token) if token else None
            if user is None:
                raise Unauthorized(_l("Sign in: send `Authorization: Bearer <token>`."))
            if roles and not user.has_role(*roles):
                raise Forbidden(
                    _l("This needs one of the roles: %(roles)s.", roles=", ".join(roles))
                )
            g.user = user
            return view(*args, **kwargs)

        _document(guarded, roles)
        return guarded  # type: ignore[return-value]

    return decorate


def public(view: F) -> F:
    _document(view, None)
    return view
