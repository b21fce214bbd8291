from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from shop.accounts.models import Role
from shop.accounts.passwords import MIN_LENGTH

ROLE_CHOICES = [r.value for r in Role]


class RegisterIn(ma.Schema):
    email = ma.fields.Email(required=True, validate=validate.Length(max=254))
    password = ma.fields.String(
        required=True, load_only=True, validate=validate.Length(min=MIN_LENGTH, max=1024)
    )
    display_name = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))


class AdminUserIn(RegisterIn):
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLE_CHOICES)),
        required=True,
        validate=validate.Length(min=1, max=len(ROLE_CHOICES)),
    )


class TokenIn(ma.Schema):
    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class PasswordChangeIn(ma.Schema):
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
