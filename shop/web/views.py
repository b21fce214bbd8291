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

from shop.accounts import api as accounts_api
from shop.accounts import service as accounts
from shop.accounts.models import Role
from shop.accounts.service import BadCredentials, WrongPassword
from shop.db import db
from shop.errors import RateLimited, ValidationFailed
from shop.i18n import _l
from shop.live.models import LiveSession, SessionState
from shop.web import current_lang, flash_message, flash_refusal, page_blueprint
from shop.web.auth import (
    login_required,
    page_user,
    public_page,
    safe_next,
    sign_in,
    sign_out,
    signed_in_user,
)
from shop.web.messages import text

STATIC_DIR = Path(__file__).resolve().parent / "static"

bp = page_blueprint("web", __name__)

#: where each role works: (role, endpoint, catalog key); the first that applies is home
LANDING = [
    (Role.ADMIN, "console.overview", "page_console"),
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
    user = page_user()
    pages = _pages_for(user)
    if len(pages) == 1:
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
    """Email and password into a cookie session; the token endpoint's throttle applies."""
    next_url = safe_next(request.args.get("next"))
    email = ""
    error = None
    status = 200
    headers: dict[str, str] = {}
    if request.method == "POST":
        email = request.form.get("email", "").strip()[:254]
        password = request.form.get("password", "")
        try:
            if len(password) > MAX_PASSWORD:
                raise BadCredentials()
            user = accounts_api.authenticate(email, password)
        except RateLimited as limited:
            error, status = text("too_many_logins", current_lang()), 429
            headers = limited.headers
        except BadCredentials:
            error, status = text("wrong_login", current_lang()), 200
        else:
            sign_in(user)
            return redirect(next_url or url_for("web.home"))
    page = render_template("web/login.html", next=next_url, email=email, error=error)
    return page, status, headers


@bp.route("/logout", methods=["POST"])
@public_page
def logout() -> Any:
    """Sign out: this user's page sessions end on the server, wherever a cookie was saved."""
    user = signed_in_user()
    if user is not None:
        accounts.end_page_sessions(db.session, user)
        db.session.commit()
    sign_out()
    flash_message("signed_out")
    return redirect(url_for("web.login"))


@bp.route("/account", methods=["GET"])
@login_required()
def account() -> Any:
    """Who you are, a new password, and signing out everywhere."""
    return render_template("web/account.html")


@bp.route("/account/password", methods=["POST"])
@login_required()
def change_password() -> Any:
    """Every other session and token ends; this browser stays signed in with a new cookie."""
    user = page_user()
    current = request.form.get("current_password", "")[:MAX_PASSWORD]
    new = request.form.get("new_password", "")
    try:
        if len(new) > MAX_PASSWORD:
            raise ValidationFailed(_l("The new password is too long."))
        accounts_api.change_password(user, current, new)
    except WrongPassword:
        flash_message("wrong_current_password", "error")
        return redirect(url_for("web.account"))
    except ValidationFailed as refused:
        flash_refusal(refused)
        return redirect(url_for("web.account"))
    except RateLimited:
        flash_message("too_many_logins", "error")
        return redirect(url_for("web.account"))
    db.session.commit()
    sign_in(user)
    flash_message("password_changed")
    return redirect(url_for("web.account"))


@bp.route("/account/sign-out-everywhere", methods=["POST"])
@login_required()
def sign_out_everywhere() -> Any:
    """End every page session and API token of this user, this one too."""
    accounts.sign_out_everywhere(db.session, page_user())
    db.session.commit()
    sign_out()
    flash_message("signed_out_everywhere")
    return redirect(url_for("web.login"))


@bp.route("/pages/assets/<path:filename>", methods=["GET"])
@public_page
def asset(filename: str) -> Any:
    """The pages' stylesheet and script (cached for a day)."""
    return send_from_directory(STATIC_DIR, filename, max_age=24 * 3600)
