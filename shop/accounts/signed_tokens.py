"""Signed bearer tokens: who the caller is, readable without the database.

``s1.<payload>.<mac>``: the payload is compact JSON in base64url — user id, roles
(sorted), issued-at and expiry (unix seconds) and a random 16-byte nonce, so every
token is unique and as unguessable as an opaque one — and the mac is its HMAC-SHA256,
also base64url. The key is derived from SECRET_KEY with a purpose label, never
SECRET_KEY itself (the page cookies are signed with that).

A signature only says what was true when the token was issued. Whether the token was
revoked since, or its user's roles changed, is for ``shop.accounts.revocations`` to
say; the token row is stored as for an opaque token (the SHA-256 of the whole string),
so the database path, revocation and sign-out work the same for both kinds.

A token that does not verify — an opaque one issued before, one signed under an
earlier SECRET_KEY, a forgery — is not refused here: it is simply looked up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app, has_app_context

PREFIX = "s1."
PURPOSE = b"shanhuo bearer tokens v1"
MAX_LENGTH = 1024  #: longer than any token we sign: not worth a MAC


@dataclass(frozen=True, slots=True)
class Claims:
    """What a signed token says about its caller, as of ``issued``."""

    user_id: int
    roles: frozenset[str]
    issued: int  #: unix seconds, rounded down
    expires: int  #: unix seconds, rounded down


def signing_key(secret: str | bytes) -> bytes:
    """The key tokens are signed with, derived from ``secret`` for this one purpose."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, PURPOSE, hashlib.sha256).digest()


def current_signing_key() -> bytes | None:
    """The current app's signing key; None outside an app or without a SECRET_KEY."""
    if not has_app_context():
        return None
    secret = current_app.config.get("SECRET_KEY")
    return signing_key(secret) if secret else None


def sign(key: bytes, *, user_id: int, roles: Iterable[str], issued: int, expires: int) -> str:
    payload = {
        "u": user_id,
        "r": sorted(roles),
        "i": issued,
        "e": expires,
        "n": _encode(secrets.token_bytes(16)),
    }
    body = _encode(json.dumps(payload, separators=(",", ":")).encode())
    return f"{PREFIX}{body}.{_mac(key, body)}"


def verify(key: bytes, token: str) -> Claims | None:
    """The claims of a token signed with ``key``; None for any other string."""
    if not token.startswith(PREFIX) or len(token) > MAX_LENGTH:
        return None
    body, dot, mac = token[len(PREFIX) :].partition(".")
    # The mac is compared as text, not decoded: a token has exactly one spelling, so
    # its hash (what a revocation names) cannot be dodged by a variant that decodes
    # to the same bytes.
    if not dot or not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims = Claims(
            user_id=payload["u"],
            roles=frozenset(payload["r"]),
            issued=payload["i"],
            expires=payload["e"],
        )
    except (ValueError, KeyError, TypeError):  # signed by us, so only after a bug
        return None
    numbers = (claims.user_id, claims.issued, claims.expires)
    if not all(type(n) is int for n in numbers) or not all(type(r) is str for r in claims.roles):
        return None
    return claims


def _mac(key: bytes, body: str) -> str:
    return _encode(hmac.new(key, (PREFIX + body).encode(), hashlib.sha256).digest())


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
