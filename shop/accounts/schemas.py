from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from shop.accounts.models import Role, User
from shop.accounts.passwords import MIN_LENGTH
from shop.accounts.service import normalize_email
from shop.inputs import Input, Text

ROLE_CHOICES = [r.value for r in Role]


class EmailAddress(ma.fields.Email):
    """An email as it is stored (trimmed, lower-case): the column's length is checked on
    that form, because lower-casing can lengthen it ("İ" becomes two characters)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return normalize_email(super()._deserialize(value, attr, data, **kwargs))


class RegisterIn(Input):
    email = EmailAddress(required=True)
    password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(min=MIN_LENGTH, max=1024)
    )
    display_name = Text(required=True, validate=validate.Length(min=1))

    class Meta:
        model = User


class AdminUserIn(RegisterIn):
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLE_CHOICES)),
        required=True,
        validate=validate.Length(min=1, max=len(ROLE_CHOICES)),
    )


class TokenIn(Input):
    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class PasswordChangeIn(Input):
    current_password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(max=1024)
    )
    new_password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(min=MIN_LENGTH, max=1024)
    )


class TokenOut(ma.Schema):
    token = ma.fields.String(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)


class UserOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    display_name = ma.fields.String(required=True)
    roles = ma.fields.List(ma.fields.String(), required=True)
