"""Password hashing with scrypt (memory-hard, in the standard library).

The stored form carries its own parameters, ``scrypt$N$r$p$salt$hash``, so the
cost can rise later without invalidating existing hashes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

R, P = 8, 1
MIN_LENGTH = 8


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


def hash_password(password: str, n: int = 2**15) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(_derive(password, salt, n, R, P))}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(expected))


@functools.cache
def dummy_hash(n: int) -> str:
    """Verified against when the email is unknown. Made with the cost real hashes are
    made with (``PASSWORD_SCRYPT_N``), so an unknown email takes as long as a known one."""
    return hash_password(secrets.token_urlsafe(16), n=n)
