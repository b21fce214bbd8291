"""Accounts endpoints: register, token, revoke, me, admin user creation."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from shop.accounts import service
from shop.accounts.models import Role
from shop.accounts.schemas import AdminUserIn, RegisterIn, TokenIn, TokenOut, UserOut
from shop.api import Blueprint
from shop.auth import bearer_token, current_user, public, requires
from shop.db import db
from shop.errors import RateLimited

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Accounts and tokens")


def _create(data: dict[str, Any], roles: list[str]) -> Any:
    user = service.create_user(
        db.session,
        email=data["email"],
        password=data["password"],
        display_name=data["display_name"],
        roles=roles,
        scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
    )
    db.session.commit()
    return user


@blp.route("/auth/register", methods=["POST"])
@public
@blp.arguments(RegisterIn)
@blp.response(201, UserOut)
@blp.alt_response(409, response="CONFLICT")
def register(data: dict[str, Any]) -> Any:
    """Create a buyer account."""
    return _create(data, [Role.BUYER.value])


def check_sign_in_rate(email: str) -> None:
    """Count a sign-in attempt (token endpoint and page login share it). Raises RateLimited."""
    limiter = current_app.extensions["shanhuo.ratelimiter"]
    limit = current_app.config["LOGIN_RATE_LIMIT"]
    window = current_app.config["LOGIN_RATE_WINDOW_S"]
    client = request.remote_addr or "unknown"
    by_client = limiter.hit(f"token:ip:{client}", limit * 5, window)
    by_email = limiter.hit(f"token:email:{service.normalize_email(email)}", limit, window)
    if not (by_client and by_email):
        raise RateLimited("Too many sign-in attempts; wait a minute and try again.")


@blp.route("/auth/token", methods=["POST"])
@public
@blp.arguments(TokenIn)
@blp.response(200, TokenOut)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def create_token(data: dict[str, Any]) -> Any:
    """Exchange email and password for a bearer token."""
    check_sign_in_rate(data["email"])
    user = service.authenticate(db.session, email=data["email"], password=data["password"])
    token, expires_at = service.issue_token(
        db.session, user, ttl_s=current_app.config["TOKEN_TTL_S"]
    )
    db.session.commit()
    return {"token": token, "expires_at": expires_at}


@blp.route("/auth/token", methods=["DELETE"])
@requires()
@blp.response(204)
def revoke_token() -> None:
    """Revoke the token this request was made with."""
    service.revoke_token(db.session, bearer_token() or "")
    db.session.commit()


@blp.route("/me", methods=["GET"])
@requires()
@blp.response(200, UserOut)
def me() -> Any:
    """The signed-in user."""
    return service.get_user(db.session, current_user().id)


@blp.route("/admin/users", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(AdminUserIn)
@blp.response(201, UserOut)
@blp.alt_response(409, response="CONFLICT")
def admin_create_user(data: dict[str, Any]) -> Any:
    """Create a user with any roles."""
    return _create(data, data["roles"])
