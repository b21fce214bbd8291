"""Accounts: create users, check passwords, issue, resolve and revoke bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask_babel import gettext
from sqlalchemy import bindparam, select, update

from shop.accounts import signed_tokens, token_cache
from shop.accounts.models import ApiToken, Caller, Role, User, UserRole
from shop.accounts.passwords import MIN_LENGTH, dummy_hash, hash_password, verify_password
from shop.db import DbSession, reads_outside_transaction, utcnow
from shop.errors import Conflict, DomainError, NotFound, ValidationFailed
from shop.i18n import N_, _l


class BadCredentials(DomainError):
    type = "unauthorized"
    status = 401
    title = N_("Wrong email or password")


class WrongPassword(DomainError):
    """A signed-in user's current password, asked again before a change, was wrong."""

    type = "forbidden"
    status = 403
    title = N_("The current password is wrong")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: DbSession,
    *,
    email: str,
    password: str,
    display_name: str,
    roles: Iterable[str],
    scrypt_n: int = 2**15,
) -> User:
    """Create a user with the given roles. Raises Conflict (email taken), ValidationFailed."""
    role_set = set(roles)
    _check_roles(role_set)
    _check_length(password, "password")
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(_l("An account with this email already exists."))
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=hash_password(password, n=scrypt_n),
        role_rows=[UserRole(role=r) for r in sorted(role_set)],
    )
    session.add(user)
    # flush: the caller needs the id, and a concurrent duplicate fails here on the UNIQUE email
    session.flush()
    return user


def _check_length(password: str, field: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(
            _l("The password must be at least %(MIN_LENGTH)s characters.", MIN_LENGTH=MIN_LENGTH),
            {field: [gettext("At least %(MIN_LENGTH)s characters.", MIN_LENGTH=MIN_LENGTH)]},
        )


def authenticate(session: DbSession, *, email: str, password: str, scrypt_n: int = 2**15) -> User:
    """The user with this email and password. Raises BadCredentials.

    ``scrypt_n`` is the cost new hashes are made with: an unknown email is checked
    against a dummy hash of that cost, so it answers as slowly as a known one."""
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        verify_password(password, dummy_hash(scrypt_n))
        raise BadCredentials()
    if not verify_password(password, user.password_hash):
        raise BadCredentials()
    if not user.active:  # deactivated by an operator: told apart from a wrong password by no one
        raise BadCredentials()
    return user


def issue_token(session: DbSession, user: User, *, ttl_s: int) -> tuple[str, datetime]:
    """A new bearer token for ``user`` and its expiry; only its hash is stored.

    Signed with the current app's key (``shop.accounts.signed_tokens``: with Redis it
    is let in without a database read), opaque outside an app."""
    now = utcnow()
    expires_at = now + timedelta(seconds=ttl_s)
    key = signed_tokens.current_signing_key()
    if key is None:
        token = secrets.token_urlsafe(32)
    else:
        token = signed_tokens.sign(
            key,
            user_id=user.id,
            roles=user.roles,
            issued=int(now.timestamp()),
            expires=int(expires_at.timestamp()),
        )
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), expires_at=expires_at))
    return token, expires_at


#: Built once: every signed-in request runs it, and building a statement costs more
#: than running it. One row per role (none: one row with role NULL).
_CALLER_BY_TOKEN = (
    select(ApiToken.user_id, UserRole.role, ApiToken.expires_at)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(UserRole, UserRole.user_id == ApiToken.user_id)
    .where(
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > bindparam("now"),
        # deactivation also revokes the tokens; this holds even for one issued in a race
        User.active.is_(True),
    )
)


def caller_for_token(session: DbSession, token: str) -> Caller | None:
    """Who a live (unexpired, unrevoked) token belongs to, with their roles, or None.

    One round trip, outside the request's transaction: every signed-in API request
    pays for it (unless the token cache of ``shop.accounts.token_cache`` knows the
    token), and one with a bad token pays for nothing else.
    """
    found = caller_and_expiry(session, token)
    return None if found is None else found[0]


def caller_and_expiry(session: DbSession, token: str) -> tuple[Caller, datetime] | None:
    """``caller_for_token`` with the token's expiry (what a cache may keep it until)."""
    with reads_outside_transaction(session) as connection:
        rows = connection.execute(
            _CALLER_BY_TOKEN, {"token_hash": token_hash(token), "now": utcnow()}
        ).all()
    if not rows:
        return None
    caller = Caller(id=rows[0].user_id, roles=frozenset(row.role for row in rows if row.role))
    return caller, rows[0].expires_at


def revoke_token(session: DbSession, token: str) -> None:
    """Revoke a token; revoking twice is harmless. Every process's token cache drops
    it once this commits."""
    expires_at = session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(ApiToken.expires_at)
    ).scalar_one_or_none()
    token_cache.forget_after_commit(session, token_hash=token_hash(token), expires_at=expires_at)


def get_user(session: DbSession, user_id: int) -> User | None:
    return session.get(User, user_id)


def end_page_sessions(session: DbSession, user: User) -> None:
    """End every page session of ``user``: each cookie issued before is refused (sign out)."""
    # in SQL, so two sign-outs at once both count
    user.session_version = User.session_version + 1  # type: ignore[assignment]
    # flush: a session that stays signed in takes the new version into its cookie
    session.flush()


def sign_out_everywhere(session: DbSession, user: User) -> None:
    """End every page session and revoke every bearer token of ``user``."""
    end_page_sessions(session, user)
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    _auth_changed(session, user)


def _auth_changed(session: DbSession, user: User) -> None:
    """Note that what ``user``'s tokens say (roles, or that they are good at all) changed:
    every process stops trusting a signed token issued before, once this commits
    (``shop.accounts.revocations`` reads the stamp; the announcement is faster)."""
    user.auth_changed_at = utcnow()
    token_cache.forget_after_commit(session, user_id=user.id, changed_at=user.auth_changed_at)


def check_new_password(password: str, field: str = "new_password") -> None:
    """Raises ValidationFailed when ``password`` is too short to be a password here."""
    _check_length(password, field)


def change_password(
    session: DbSession,
    user: User,
    *,
    current_password: str,
    new_password: str,
    scrypt_n: int = 2**15,
) -> None:
    """Set a new password and end every page session and token of the user.

    Raises ValidationFailed (too short), WrongPassword (the current password is wrong)."""
    check_new_password(new_password)
    if not verify_password(current_password, user.password_hash):
        raise WrongPassword(_l("The current password is not right."))
    user.password_hash = hash_password(new_password, n=scrypt_n)
    sign_out_everywhere(session, user)


# ---------------------------------------------------------------------------- operators


class CannotChangeSelf(Conflict):
    title = N_("An operator cannot lock themselves out")


def list_users(session: DbSession, *, role: str | None = None, limit: int = 200) -> list[User]:
    """Users, newest first, optionally only those holding ``role``."""
    stmt = select(User).order_by(User.id.desc()).limit(limit)
    if role is not None:
        stmt = stmt.where(User.id.in_(select(UserRole.user_id).where(UserRole.role == role)))
    return list(session.scalars(stmt))


def _check_roles(roles: set[str]) -> None:
    unknown = roles - {r.value for r in Role}
    if unknown or not roles:
        raise ValidationFailed(
            _l("Roles must be some of admin, streamer, buyer, villager, farmer."),
            {
                "roles": [gettext("Unknown role: %(r)s", r=r) for r in sorted(unknown)]
                or [N_("At least one role.")]
            },
        )


def set_roles(session: DbSession, user_id: int, roles: Iterable[str], *, actor_id: int) -> User:
    """Give a user exactly these roles. Raises NotFound, ValidationFailed, CannotChangeSelf
    (an admin taking the admin role from themselves)."""
    user = _existing_user(session, user_id)
    wanted = set(roles)
    _check_roles(wanted)
    if user.id == actor_id and Role.ADMIN.value not in wanted:
        raise CannotChangeSelf(_l("You cannot take the admin role from yourself."))
    user.role_rows = [row for row in user.role_rows if row.role in wanted] + [
        UserRole(role=role) for role in sorted(wanted - set(user.roles))
    ]
    session.flush()
    # Cached callers and signed tokens carry their roles: every process stops trusting
    # this user's after commit.
    _auth_changed(session, user)
    return user


def deactivate_user(session: DbSession, user_id: int, *, actor_id: int) -> User:
    """The user can no longer sign in; every token and page session of theirs ends. What
    they did (orders, deliveries, earnings) stays. Raises NotFound, CannotChangeSelf."""
    user = _existing_user(session, user_id)
    if user.id == actor_id:
        raise CannotChangeSelf(_l("You cannot deactivate yourself."))
    user.active = False
    sign_out_everywhere(session, user)
    return user


def _existing_user(session: DbSession, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(_l("No user %(user_id)s.", user_id=user_id))
    return user
