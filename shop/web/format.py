"""How the pages show money, weights, percentages and times — and read money back.

Integer arithmetic only: money is integer fen, weights integer grams, premiums basis
points; nothing here goes through a float.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def yuan(fen: int | None) -> str:
    """1234 → ``¥12.34``; −5 → ``-¥0.05``; thousands separated."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def yuan_per_kg(fen_per_kg: int | None) -> str:
    return "—" if fen_per_kg is None else f"{yuan(fen_per_kg)}/kg"


def kg(grams: int | None) -> str:
    """123400 → ``123.4 kg``; 2000000 → ``2,000 kg``."""
    if grams is None:
        return "—"
    sign = "-" if grams < 0 else ""
    whole, rest = divmod(abs(int(grams)), 1000)
    decimals = f"{rest:03d}".rstrip("0")
    return f"{sign}{whole:,}{'.' + decimals if decimals else ''} kg"


def factor_bp(premium_bp: int | None) -> str:
    """The multiplier a premium makes: 1200 → ``1.12``, 1250 → ``1.125``."""
    if premium_bp is None:
        return "—"
    whole, rest = divmod(10_000 + int(premium_bp), 10_000)
    decimals = f"{rest:04d}".rstrip("0")
    return f"{whole}{'.' + decimals if decimals else ''}"


def percent_bp(bp: int | None) -> str:
    """Basis points as a percentage: 1200 → ``12%``, 1250 → ``12.5%``."""
    if bp is None:
        return "—"
    whole, rest = divmod(int(bp), 100)
    decimals = f"{rest:02d}".rstrip("0")
    return f"{whole}{'.' + decimals if decimals else ''}%"


def shop_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["SHOP_TIMEZONE"])


def local(moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """An aware datetime in ``SHOP_TIMEZONE``."""
    if moment is None:
        return "—"
    return moment.astimezone(shop_tz()).strftime(pattern)


def day(value: date | None) -> str:
    return "—" if value is None else value.isoformat()


_YUAN = re.compile(r"^\s*[¥￥]?\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$")
_WHOLE = re.compile(r"^\s*(\d{1,9})\s*$")


def parse_yuan(raw: str | None) -> int | None:
    """``"12.3"`` → 1230 fen; None when it is not a plain amount of yuan."""
    match = _YUAN.match(raw or "")
    if match is None:
        return None
    whole, cents = match.groups()
    return int(whole) * 100 + int((cents or "").ljust(2, "0"))


def parse_whole(raw: str | None) -> int | None:
    """``"42"`` → 42; None for anything but digits (no signs, no decimals)."""
    match = _WHOLE.match(raw or "")
    return int(match.group(1)) if match else None


_DECIMAL = re.compile(r"^\s*(\d{1,9})(?:\.(\d+))?\s*$")


def parse_scaled(raw: str | None, places: int) -> int | None:
    """A plain decimal with at most ``places`` decimals, times 10**places:
    ``parse_scaled("86.75", 3)`` → 86750 (grams of 86.75 kg); None otherwise."""
    match = _DECIMAL.match(raw or "")
    if match is None:
        return None
    whole, decimals = match.group(1), match.group(2) or ""
    if len(decimals) > places:
        return None
    return int(whole) * 10**places + int(decimals.ljust(places, "0") or "0")
