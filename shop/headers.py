"""Headers every response gets: what a cache may keep, and HSTS in production."""

from __future__ import annotations

from flask import Response, current_app, request

#: two years, every subdomain: the HSTS preload list's minimum
HSTS = "max-age=63072000; includeSubDomains"


def protect_response(response: Response) -> Response:
    """``Cache-Control: no-store`` on every response that may carry personal data.

    The rule, kept simple so nothing slips through: a response may be stored only when
    it answers an anonymous read (GET or HEAD with no ``Authorization`` header and no
    page-session cookie) — those answer public data (catalog, market prices, live
    events, images, the API document). Everything else is ``no-store``: every
    authenticated API response, every signed-in page, and every write (a registration
    answers with the email, a sign-in with a token). A view that declared its answer
    ``public`` (content-addressed images) keeps its own header.

    ``Strict-Transport-Security`` when ``SHANHUO_ENV=production`` (served over HTTPS
    only, behind the proxy that terminates TLS).
    """
    cache_control = response.headers.get("Cache-Control", "")
    if _personal() and "public" not in cache_control:
        response.headers["Cache-Control"] = "no-store"
    if current_app.config.get("SHANHUO_ENV") == "production":
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _personal() -> bool:
    if request.method not in ("GET", "HEAD"):
        return True
    session_cookie = current_app.config.get("SESSION_COOKIE_NAME", "session")
    return "Authorization" in request.headers or session_cookie in request.cookies
