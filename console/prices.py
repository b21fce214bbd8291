"""Market prices in the console: enter one, or import a CSV file all or nothing — a file
with bad lines is shown back line by line with each problem beside its line."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from console.base import admin_page, bp, load, refuse
from contracts import prices as price_service
from contracts import reads
from contracts.errors import InvalidCsv
from contracts.schemas import MarketPriceIn
from shop.db import db
from shop.errors import Conflict, DomainError, ValidationFailed
from shop.i18n import _l
from shop.web import flash_message
from shop.web.auth import page_user
from shop.web.format import parse_whole, parse_yuan

#: a pasted or uploaded CSV larger than this is refused before parsing (≈ 10,000 lines)
MAX_CSV_BYTES = 1_000_000
RACED = "A price for this product, grade and date was just stored by someone else."


def _page(**context: Any) -> Any:
    return render_template(
        "console/prices.html",
        recent=price_service.list_market_prices(
            db.session, product_id=None, grade=None, limit=30, cursor=None
        )["items"],
        names=reads.product_names(db.session),
        **context,
    )


@bp.route("/admin/prices", methods=["GET"])
@admin_page
def prices() -> Any:
    """The latest prices, the form for one, and the CSV import."""
    return _page(csv_text="", csv_lines=None, csv_errors=None)


@bp.route("/admin/prices", methods=["POST"])
@admin_page
def prices_add() -> Any:
    form = request.form
    try:
        price = parse_yuan(form.get("price_yuan"))
        if price is None:
            raise ValidationFailed(_l("price: write it like 17.45 (yuan per kg)."))
        data = load(
            MarketPriceIn(),
            {
                "product_id": parse_whole(form.get("product_id")) or 0,
                "grade": (form.get("grade") or "").strip() or "standard",
                "price_fen_per_kg": price,
                "effective_on": form.get("effective_on", ""),
                "source": form.get("source", ""),
            },
        )
        price_service.add_market_price(db.session, **data, created_by=page_user().id)
        db.session.commit()
    except DomainError as error:
        refuse(error)
        return redirect(url_for(".prices"))
    except IntegrityError:
        refuse(Conflict(RACED))
        return redirect(url_for(".prices"))
    flash_message("price_saved")
    return redirect(url_for(".prices"))


@bp.route("/admin/prices/import", methods=["POST"])
@admin_page
def prices_import() -> Any:
    upload = request.files.get("csv_file")
    raw = upload.read(MAX_CSV_BYTES + 1) if upload and upload.filename else None
    if raw is None:
        raw = request.form.get("csv_text", "").encode("utf-8")
    if len(raw) > MAX_CSV_BYTES:
        refuse(ValidationFailed(f"The file is larger than {MAX_CSV_BYTES} bytes."))
        return redirect(url_for(".prices"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        flash_message("csv_unreadable", "error")
        return redirect(url_for(".prices"))
    try:
        imported = price_service.import_market_prices_csv(
            db.session, text, created_by=page_user().id
        )
        db.session.commit()
    except InvalidCsv as error:
        db.session.rollback()
        errors = error.extra.get("errors", [])
        flash_message("import_failed", "error", n=len(errors))
        by_line: dict[int, list[str]] = {}
        for problem in errors:
            by_line.setdefault(problem["line"], []).append(problem["message"])
        lines = text.lstrip("\ufeff").splitlines()
        return _page(csv_text=text, csv_lines=lines, csv_errors=by_line), 422
    except IntegrityError:
        refuse(Conflict(RACED))
        return redirect(url_for(".prices"))
    flash_message("imported", n=imported)
    return redirect(url_for(".prices"))
