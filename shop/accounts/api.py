"""Accounts endpoints: register, token, revoke, me, password, admin user creation; and the
sign-in throttle's Flask side, which the login page shares."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import current_app

from shop.accounts import service, throttle
from shop.accounts.models import Role, User
from shop.accounts.schemas import (
    AdminUserIn,
    PasswordChangeIn,
    RegisterIn,
    TokenIn,
    TokenOut,
    UserOut,
)
from shop.accounts.service import BadCredentials, WrongPassword
from shop.accounts.throttle import SignInAttempt, SignInRules, begin_sign_in
from shop.api import Blueprint
from shop.auth import bearer_token, current_user, public, requires
from shop.db import db
from shop.errors import RateLimited
from shop.i18n import _l
from shop.proxy import client_address
from shop.ratelimit import RateLimiter

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
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def register(data: dict[str, Any]) -> Any:
    """Create a buyer account (limited per client address: each costs a scrypt hash)."""
    check_registration_rate()
    return _create(data, [Role.BUYER.value])


def _limiter() -> RateLimiter:
    return current_app.extensions["shanhuo.ratelimiter"]  # type: ignore[no-any-return]


def sign_in_attempt(email: str) -> SignInAttempt:
    """Let one password check for ``email`` through the sign-in throttle (the token
    endpoint, the login page and the password change share it). Raises RateLimited."""
    return begin_sign_in(
        _limiter(),
        SignInRules.from_config(current_app.config),
        email=email,
        address=client_address(),
        now=throttle.now(),
    )


def authenticate(email: str, password: str) -> User:
    """The user with this email and password, through the throttle.

    Raises RateLimited, BadCredentials."""
    attempt = sign_in_attempt(email)
    try:
        user = service.authenticate(
            db.session,
            email=email,
            password=password,
            scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
        )
    except BadCredentials:
        attempt.failed()
        raise
    attempt.succeeded()
    return user


def change_password(user: User, current_password: str, new_password: str) -> None:
    """A new password for ``user``; the current one is checked through the throttle.

    Raises ValidationFailed, RateLimited, WrongPassword."""
    service.check_new_password(new_password)
    attempt = sign_in_attempt(user.email)
    try:
        service.change_password(
            db.session,
            user,
            current_password=current_password,
            new_password=new_password,
            scrypt_n=current_app.config["PASSWORD_SCRYPT_N"],
        )
    except WrongPassword:
        attempt.failed()
        raise
    attempt.succeeded()


def check_registration_rate() -> None:
    """Count one registration from this client address. Raises RateLimited."""
    limit = current_app.config["REGISTER_RATE_LIMIT"]
    window = current_app.config["REGISTER_RATE_WINDOW_S"]
    if not _limiter().hit(f"register:{client_address()}", limit, window):
        raise RateLimited(
            _l("Too many new accounts from this address; try again later."),
            retry_after_s=math.ceil(window - time.time() % window),
        )


@blp.route("/auth/token", methods=["POST"])
@public
@blp.arguments(TokenIn)
@blp.response(200, TokenOut)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def create_token(data: dict[str, Any]) -> Any:
    """Exchange email and password for a bearer token."""
    user = authenticate(data["email"], data["password"])
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


@blp.route("/me/password", methods=["POST"])
@requires()
@blp.arguments(PasswordChangeIn)
@blp.response(204)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def change_my_password(data: dict[str, Any]) -> None:
    """Change your password: every token and page session of yours ends, this one too."""
    user = service.get_user(db.session, current_user().id)
    assert user is not None  # the token was just resolved to this user
    change_password(user, data["current_password"], data["new_password"])
    db.session.commit()


@blp.route("/admin/users", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(AdminUserIn)
@blp.response(201, UserOut)
@blp.alt_response(409, response="CONFLICT")
def admin_create_user(data: dict[str, Any]) -> Any:
    """Create a user with any roles."""
    return _create(data, data["roles"])
