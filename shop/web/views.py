"""Sign-in, sign-out, the role landing page and the pages' static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from sqlalchemy import select

from shop.accounts import service as accounts
from shop.accounts.api import check_sign_in_rate
from shop.accounts.models import Role
from shop.accounts.service import BadCredentials
from shop.db import db
from shop.errors import RateLimited
from shop.live.models import LiveSession, SessionState
from shop.web import current_lang, flash_message, page_blueprint
from shop.web.auth import login_required, public_page, safe_next, sign_in, sign_out
from shop.web.messages import text

STATIC_DIR = Path(__file__).resolve().parent / "static"

bp = page_blueprint("web", __name__)

#: where each role works: (role, endpoint, catalog key); the first that applies is home
LANDING = [
    (Role.VILLAGER, "workshop_pages.workshop", "page_workshop"),
    (Role.FARMER, "farmer_pages.statement", "page_farmer"),
    (Role.STREAMER, "live_pages.studio", "page_studio"),
]

MAX_PASSWORD = 1024  #: longer is refused before hashing (scrypt cost grows with input)


def _pages_for(user: Any) -> list[tuple[str, str]]:
    return [
        (endpoint, key)
        for role, endpoint, key in LANDING
        if user.has_role(role) and endpoint in current_app.view_functions
    ]


@bp.route("/", methods=["GET"])
@login_required()
def home() -> Any:
    """Role landing: straight to the one page a person works on, else a short menu."""
    from shop.web.auth import page_user

    user = page_user()
    pages = _pages_for(user)
    if len(pages) == 1 and not user.has_role(Role.ADMIN):
        return redirect(url_for(pages[0][0]))
    live_sessions = db.session.scalars(
        select(LiveSession)
        .where(LiveSession.state == SessionState.LIVE.value)
        .order_by(LiveSession.started_at.desc(), LiveSession.id.desc())
        .limit(20)
    ).all()
    return render_template("web/home.html", pages=pages, live_sessions=live_sessions)


@bp.route("/login", methods=["GET", "POST"])
@public_page
def login() -> Any:
    """Email and password into a cookie session; the token endpoint's rate limits apply."""
    next_url = safe_next(request.args.get("next"))
    email = ""
    error = None
    status = 200
    if request.method == "POST":
        email = request.form.get("email", "").strip()[:254]
        password = request.form.get("password", "")
        try:
            check_sign_in_rate(email)
            if len(password) > MAX_PASSWORD:
                raise BadCredentials()
            user = accounts.authenticate(db.session, email=email, password=password)
        except RateLimited:
            error, status = text("too_many_logins", current_lang()), 429
        except BadCredentials:
            error, status = text("wrong_login", current_lang()), 200
        else:
            sign_in(user)
            return redirect(next_url or url_for("web.home"))
    page = render_template("web/login.html", next=next_url, email=email, error=error)
    return page, status


@bp.route("/logout", methods=["POST"])
@public_page
def logout() -> Any:
    sign_out()
    flash_message("signed_out")
    return redirect(url_for("web.login"))


@bp.route("/pages/assets/<path:filename>", methods=["GET"])
@public_page
def asset(filename: str) -> Any:
    """The pages' stylesheet and script (cached for a day)."""
    return send_from_directory(STATIC_DIR, filename, max_age=24 * 3600)
