"""The console's blueprint and what its pages share: the admin guard, reading forms
through the API's input schemas, and showing a refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import marshmallow as ma

from console import messages  # noqa: F401  (adds the console's words to the catalog)
from shop.accounts.models import Role
from shop.db import db
from shop.errors import DomainError, ValidationFailed
from shop.i18n import translate_validation
from shop.web import flash_refusal, page_blueprint
from shop.web.auth import login_required

F = TypeVar("F", bound=Callable[..., Any])

bp = page_blueprint("console", __name__)


def admin_page(view: F) -> F:
    """Only admins (others: the HTML 403 page; not signed in: the login page)."""
    return login_required(Role.ADMIN)(view)


def load(schema: ma.Schema, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` through one of the API's input schemas. Raises ValidationFailed."""
    try:
        return schema.load(data)  # type: ignore[no-any-return]
    except ma.ValidationError as error:
        messages = error.normalized_messages()
        raise ValidationFailed(
            "; ".join(
                f"{field}: {' '.join(map(translate_validation, problems))}"
                for field, problems in messages.items()
            ),
        ) from None


def refuse(error: DomainError) -> None:
    """Roll back what the request did and say why on the next page."""
    db.session.rollback()
    flash_refusal(error)
