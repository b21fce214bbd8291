"""Market prices: single entries, the all-or-nothing CSV import, and the price in force on a day."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from flask_babel import gettext
from sqlalchemy import and_, or_, select, tuple_

from contracts.errors import InvalidCsv
from contracts.models import STANDARD_GRADE, MarketPrice
from shop.catalog import service as catalog
from shop.catalog.models import Product
from shop.db import DbSession
from shop.errors import Conflict, NotFound, ValidationFailed
from shop.i18n import N_, _l
from shop.inputs import integer_bounds

CSV_HEADER = ("product_sku", "grade", "price_fen_per_kg", "effective_on", "source")
MAX_PRICE_FEN_PER_KG = 1_000_000  #: ¥10,000 per kg: far above any produce we buy
MAX_CSV_ROWS = 10_000
GRADE_PATTERN = re.compile(r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,38}[^\s\x00-\x1f\x7f])?$")
TEXT_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]*$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INT_PATTERN = re.compile(r"^[0-9]+$")


def _duplicate_message(product: Product, grade: str, effective_on: date) -> str:
    return gettext(
        "A market price for %(sku)s grade %(grade)s effective %(effective_on)s already exists.",
        sku=product.sku,
        grade=grade,
        effective_on=effective_on.isoformat(),
    )


def add_market_price(
    session: DbSession,
    *,
    product_id: int,
    grade: str = STANDARD_GRADE,
    price_fen_per_kg: int,
    effective_on: date,
    source: str,
    created_by: int | None,
) -> MarketPrice:
    """Record one market price. Raises ValidationFailed (unknown product), Conflict (duplicate)."""
    product = session.get(Product, product_id)
    if product is None:
        raise ValidationFailed(
            _l("No product %(product_id)s.", product_id=product_id),
            {"product_id": [gettext(N_("No such product."))]},
        )
    if _existing(session, [(product_id, grade, effective_on)]):
        raise Conflict(_duplicate_message(product, grade, effective_on))
    price = MarketPrice(
        product_id=product_id,
        grade=grade,
        price_fen_per_kg=price_fen_per_kg,
        effective_on=effective_on,
        source=source,
        created_by=created_by,
    )
    session.add(price)
    session.flush()  # the caller needs the id; a racing duplicate fails here on UNIQUE
    return price


def _existing(session: DbSession, keys: list[tuple[int, str, date]]) -> set[tuple[int, str, date]]:
    """Which of these (product_id, grade, effective_on) keys already have a price."""
    found: set[tuple[int, str, date]] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = session.execute(
            select(MarketPrice.product_id, MarketPrice.grade, MarketPrice.effective_on).where(
                tuple_(MarketPrice.product_id, MarketPrice.grade, MarketPrice.effective_on).in_(
                    chunk
                )
            )
        )
        found.update((r.product_id, r.grade, r.effective_on) for r in rows)
    return found


def price_in_force(
    session: DbSession, *, product_id: int, grade: str, on: date
) -> MarketPrice | None:
    """The latest price for this product and grade effective on or before ``on``."""
    return session.scalar(
        select(MarketPrice)
        .where(
            MarketPrice.product_id == product_id,
            MarketPrice.grade == grade,
            MarketPrice.effective_on <= on,
        )
        .order_by(MarketPrice.effective_on.desc())
        .limit(1)
    )


def list_market_prices(
    session: DbSession,
    *,
    product_id: int | None,
    grade: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """One page of prices, newest first: latest ``effective_on`` first, then latest recorded.

    The cursor is ``YYYY-MM-DD:id`` of the last price on the previous page.
    Raises ValidationFailed (a cursor this server did not give out).
    """
    stmt = select(MarketPrice)
    if product_id is not None:
        stmt = stmt.where(MarketPrice.product_id == product_id)
    if grade is not None:
        stmt = stmt.where(MarketPrice.grade == grade)
    if cursor:
        day_text, _, id_text = cursor.partition(":")
        try:
            after_day, after_id = date.fromisoformat(day_text), int(id_text)
            if not 0 < after_id <= integer_bounds(MarketPrice.__table__.c.id.type)[1]:
                raise ValueError(id_text)
        except ValueError:
            raise ValidationFailed(
                _l("The cursor is not one this server gave out."),
                {"cursor": [N_("Invalid cursor.")]},
            ) from None
        stmt = stmt.where(
            or_(
                MarketPrice.effective_on < after_day,
                and_(MarketPrice.effective_on == after_day, MarketPrice.id < after_id),
            )
        )
    stmt = stmt.order_by(MarketPrice.effective_on.desc(), MarketPrice.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = f"{last.effective_on.isoformat()}:{last.id}"
    return {"items": rows[:limit], "next_cursor": next_cursor}


@dataclass(frozen=True)
class _Row:
    line: int
    product: Product
    grade: str
    price_fen_per_kg: int
    effective_on: date
    source: str


def import_market_prices_csv(session: DbSession, text: str, *, created_by: int | None) -> int:
    """Import every line of a market-price CSV, or none. Returns how many were imported.

    Raises InvalidCsv with ``errors: [{line, message}]`` naming every bad line (line 1
    is the header); nothing is written then. A product/grade/date that appears twice in
    the file, or is already stored, is an error.
    """
    errors: list[dict[str, Any]] = []
    rows: list[_Row] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise InvalidCsv(
            errors=[{"line": 1, "message": gettext("Unreadable header: %(error)s.", error=error)}]
        ) from None
    if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
        raise InvalidCsv(
            _l("The first line must be the header %(header)s.", header=",".join(CSV_HEADER)),
            errors=[
                {
                    "line": 1,
                    "message": gettext(
                        "The header must be %(header)s.", header=",".join(CSV_HEADER)
                    ),
                }
            ],
        )

    products: dict[str, Product | None] = {}
    first_seen: dict[tuple[int, str, date], int] = {}
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(
                {
                    "line": reader.line_num,
                    "message": gettext("Not valid CSV: %(error)s.", error=error),
                }
            )
            break
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue  # blank lines are allowed (a trailing newline, a spacer)
        if len(rows) + len(errors) >= MAX_CSV_ROWS:
            errors.append(
                {
                    "line": line,
                    "message": gettext("At most %(rows)s lines per file.", rows=MAX_CSV_ROWS),
                }
            )
            break
        row, message = _parse_line(session, fields, products)
        if message is not None:
            errors.append({"line": line, "message": message})
            continue
        assert row is not None
        key = (row.product.id, row.grade, row.effective_on)
        if key in first_seen:
            errors.append(
                {
                    "line": line,
                    "message": gettext(
                        "Duplicate of line %(line)s: %(sku)s grade %(grade)s effective "
                        "%(effective_on)s.",
                        line=first_seen[key],
                        sku=row.product.sku,
                        grade=row.grade,
                        effective_on=row.effective_on.isoformat(),
                    ),
                }
            )
            continue
        first_seen[key] = line
        rows.append(replace(row, line=line))

    stored = _existing(session, list(first_seen))
    for row in rows:
        if (row.product.id, row.grade, row.effective_on) in stored:
            message = _duplicate_message(row.product, row.grade, row.effective_on)
            errors.append({"line": row.line, "message": message})
    if not rows and not errors:
        errors.append({"line": 2, "message": gettext("The file has a header but no prices.")})
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise InvalidCsv(
            _l(
                "%(count)s bad line(s); nothing was imported. Fix them and send the whole file "
                "again.",
                count=len(errors),
            ),
            imported=0,
            errors=errors,
        )

    session.add_all(
        MarketPrice(
            product_id=row.product.id,
            grade=row.grade,
            price_fen_per_kg=row.price_fen_per_kg,
            effective_on=row.effective_on,
            source=row.source,
            created_by=created_by,
        )
        for row in rows
    )
    session.flush()  # a racing import of the same key fails here on UNIQUE, inside the request
    return len(rows)


def _parse_line(
    session: DbSession, fields: list[str], products: dict[str, Product | None]
) -> tuple[_Row | None, str | None]:
    """One data line → a row, or the message saying what is wrong with it."""
    if len(fields) != len(CSV_HEADER):
        return None, gettext(
            "Expected %(expected)s fields, found %(found)s.",
            expected=len(CSV_HEADER),
            found=len(fields),
        )
    if any("\x00" in field for field in fields):
        # Refused like a NUL anywhere else: no text column can hold one (and a sku with
        # one would fail the product lookup on PostgreSQL).
        return None, gettext("A field contains a NUL character.")
    sku, grade, price_text, date_text, source = (f.strip() for f in fields)
    problems: list[str] = []

    product: Product | None = None
    if not sku:
        problems.append(gettext("product_sku is empty"))
    else:
        if sku not in products:
            try:
                products[sku] = catalog.get_product_by_sku(session, sku)
            except NotFound:
                products[sku] = None
        product = products[sku]
        if product is None:
            problems.append(gettext("No product with sku %(sku)s", sku=sku))

    grade = grade or STANDARD_GRADE
    if not GRADE_PATTERN.fullmatch(grade):
        problems.append(gettext("grade must be 1–40 printable characters"))

    price = 0
    if not INT_PATTERN.fullmatch(price_text):
        problems.append(
            gettext("price_fen_per_kg must be a whole number of fen, not %(text)s", text=price_text)
        )
    # the length first: int() refuses a number of over 4,300 digits with an exception
    elif len(price_text) > 18 or not 1 <= int(price_text) <= MAX_PRICE_FEN_PER_KG:
        problems.append(
            gettext("price_fen_per_kg must be between 1 and %(max)s", max=MAX_PRICE_FEN_PER_KG)
        )
    else:
        price = int(price_text)

    effective_on: date | None = None
    if DATE_PATTERN.fullmatch(date_text):
        with contextlib.suppress(ValueError):
            effective_on = date.fromisoformat(date_text)
    if effective_on is None:
        problems.append(
            gettext("effective_on must be a date YYYY-MM-DD, not %(text)s", text=date_text)
        )

    if not source or len(source) > 200 or not TEXT_PATTERN.fullmatch(source):
        problems.append(gettext("source must be 1–200 printable characters"))

    if problems:
        return None, gettext("; ").join(problems) + gettext(".")
    assert product is not None and effective_on is not None
    return _Row(0, product, grade, price, effective_on, source), None
