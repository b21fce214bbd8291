"""Keyset pagination for every list endpoint: ``{"items", "next_cursor"}``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from shop.db import DbSession
from shop.errors import ValidationFailed
from shop.i18n import N_, _l
from shop.inputs import integer_bounds


def paginate(
    session: DbSession,
    stmt: Select[Any],
    key: InstrumentedAttribute[int],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> dict[str, Any]:
    """One page of ``stmt`` ordered by the integer column ``key``; the cursor is the last key.

    Raises ValidationFailed for a cursor that is not a number the key's column can hold
    (a larger one would overflow the query, not page through anything).
    """
    if cursor:
        low, high = integer_bounds(key.type)
        try:
            after = int(cursor)
            if not low <= after <= high:
                raise ValueError(cursor)
        except ValueError:
            raise ValidationFailed(
                _l("The cursor is not one this server gave out."),
                {"cursor": [N_("Invalid cursor.")]},
            ) from None
        stmt = stmt.where(key < after if descending else key > after)
    stmt = stmt.order_by(key.desc() if descending else key.asc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = str(getattr(rows[limit - 1], key.key)) if len(rows) > limit else None
    return {"items": rows[:limit], "next_cursor": next_cursor}
