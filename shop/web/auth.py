"""Who is looking at a page: a signed cookie session (Flask's), not a bearer token.

The cookie carries the user's ``session_version``; a cookie of an older version is
refused, so the server can end sessions that live in browsers (sign out, sign out
everywhere, a changed password).

``@login_required("villager")`` sends a visitor who is not signed in to ``/login`` and
answers a signed-in user without the role with the HTML 403 page. It sets
``_shanhuo_access`` like ``shop.auth.requires``, so the test that every endpoint names
who may call it covers the pages too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, session, url_for

from shop.accounts import service
from shop.accounts.models import User
from shop.db import db
from shop.errors import Forbidden
from shop.i18n import _l

F = TypeVar("F", bound=Callable[..., Any])

SESSION_USER = "uid"
#: the user's ``session_version`` when the cookie was issued; a newer one ends it
SESSION_VERSION = "sv"


def _clear() -> None:
    session.clear()
    # The CSRF token Flask-WTF cached for this request belonged to the cleared session.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    g.pop("page_user", None)


def sign_in(user: User) -> None:
    """Start a fresh session for ``user`` (a new cookie: no fixation of an old one)."""
    _clear()
    session.permanent = True
    session[SESSION_USER] = user.id
    session[SESSION_VERSION] = user.session_version


def sign_out() -> None:
    """Forget the session in this browser (ending it on the server is the caller's
    ``end_page_sessions``: a copy of the cookie saved elsewhere would still work)."""
    _clear()


def signed_in_user() -> User | None:
    """The user of this request's session, if any."""
    user_id = session.get(SESSION_USER)
    if not isinstance(user_id, int):
        return None
    # Once per request (``g`` lives as long as the request's app context); signing in
    # or out clears it.
    if "page_user" not in g:
        user = service.get_user(db.session, user_id)
        if user is not None and (
            user.session_version != session.get(SESSION_VERSION) or not user.active
        ):
            # ended on the server: signed out, signed out everywhere, password changed,
            # deactivated by an operator
            _clear()
            user = None
        g.page_user = user
    return g.page_user  # type: ignore[no-any-return]


def page_user() -> User:
    """The signed-in user (only inside a ``login_required`` view)."""
    user = signed_in_user()
    assert user is not None
    return user


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after signing in, or None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return None
    return target


def login_required(*roles: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = signed_in_user()
            if user is None:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            if roles and not user.has_role(*roles):
                raise Forbidden(
                    _l("This page needs one of the roles: %(roles)s.", roles=", ".join(roles))
                )
            return view(*args, **kwargs)

        guarded._shanhuo_access = roles  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def public_page(view: F) -> F:
    view._shanhuo_access = "public"  # type: ignore[attr-defined]
    return view
