"""What a request field may hold: bounds read from the model columns, in one place.

Every request schema derives from ``Input``. When its fields are bound, each field gets
the bounds of the column it is stored in: an integer the range of the column's type
(``Integer`` 32-bit, ``BigInteger`` 64-bit), a string the column's ``String(length)``,
a date or datetime the sane range below. The column is found by name on ``Meta.model``,
or named by the field (``metadata={"column": Order.ship_name}``). A field that is stored
nowhere must carry its own bounds (``Range`` with both ends, ``Length`` with a maximum,
``OneOf``); a field with none is refused when the schema is built, so the application
does not start with an unbounded input. Widening a column (``Integer`` → ``BigInteger``,
``String(40)`` → ``String(80)``) widens what its inputs accept, with no schema edit.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from marshmallow import validate

#: Dates and datetimes outside this range are typing mistakes or probes; refused (422)
#: before they reach date arithmetic, a time-zone conversion or a database column.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)


def integer_bounds(type_: sa.types.TypeEngine[Any]) -> tuple[int, int]:
    """The smallest and largest value a column of this integer type holds."""
    if isinstance(type_, sa.SmallInteger):
        bits = 16
    elif isinstance(type_, sa.BigInteger):
        bits = 64
    elif isinstance(type_, sa.Integer):
        bits = 32
    else:
        raise TypeError(f"{type_!r} is not an integer type")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def column_of(attribute: Any) -> sa.Column[Any]:
    """The Column behind a mapped attribute (``Product.sku``) or a Column itself."""
    if isinstance(attribute, sa.Column):
        return attribute
    columns = attribute.property.columns
    return columns[0]  # type: ignore[no-any-return]


def string_length(attribute: Any) -> int:
    """The length of a ``String(n)`` column (``Payment.payment_id`` → 255)."""
    length = getattr(column_of(attribute).type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{attribute!r} has no length")
    return length


class FullMatch(validate.Regexp):
    """A pattern the whole value must match.

    marshmallow's ``Regexp`` uses ``re.match``, so ``^…$`` lets a trailing newline
    through. Documented in OpenAPI as the same ``pattern``.
    """

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class DayRange(validate.Range):
    """A date between FIRST_DAY and LAST_DAY (OpenAPI: ``x-minimum``/``x-maximum``)."""

    def __init__(self) -> None:
        super().__init__(
            min=FIRST_DAY,
            max=LAST_DAY,
            error=f"Must be a date from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}.",
        )


class TimeRange(validate.Validator):
    """A datetime whose own calendar day is between FIRST_DAY and LAST_DAY.

    The day is read in the value's own offset, with no conversion: converting year 1 or
    9999 to UTC is what overflows.
    """

    error = f"Must be a time from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}."

    def __call__(self, value: datetime) -> datetime:
        if not FIRST_DAY <= value.date() <= LAST_DAY:
            raise ma.ValidationError(self.error)
        return value


class Text(ma.fields.String):
    """Free text a person typed (a name, a title, a reason): outer whitespace is dropped
    before the length is checked, so a blank value is refused by ``Length(min=1)``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.strip()


class InputOpts(ma.SchemaOpts):
    """``Meta.model``: the mapped class whose columns the fields are stored in."""

    def __init__(self, meta: type, **kwargs: Any) -> None:
        super().__init__(meta, **kwargs)
        self.model = getattr(meta, "model", None)


class Input(ma.Schema):
    """Base of every request schema (body, query, headers): see the module docstring."""

    OPTIONS_CLASS = InputOpts

    def on_bind_field(self, field_name: str, field_obj: ma.fields.Field[Any]) -> None:
        where = f"{type(self).__name__}.{field_name}"
        bound(field_obj, self._column(field_name, field_obj), where)

    def _column(self, field_name: str, field_obj: ma.fields.Field[Any]) -> sa.Column[Any] | None:
        named = field_obj.metadata.get("column")
        if named is not None:
            return column_of(named)
        model = self.opts.model  # type: ignore[attr-defined]
        if model is None:
            return None
        return model.__table__.c.get(field_obj.attribute or field_name)  # type: ignore[no-any-return]


def bound(field: ma.fields.Field[Any], column: sa.Column[Any] | None, where: str) -> None:
    """Add the column's bounds to ``field``; raise TypeError if it would stay unbounded."""
    if isinstance(field, ma.fields.List):
        bound(field.inner, column, where + "[]")
        if not _has_max_length(field):
            raise TypeError(f"{where}: a list needs Length(max=…)")
        return
    if isinstance(field, ma.fields.Nested):
        if not issubclass(type(field.schema), Input):
            raise TypeError(f"{where}: a nested request schema must derive from Input")
        return
    added: list[validate.Validator] = []
    if isinstance(field, ma.fields.Date):
        added.append(DayRange())
    elif isinstance(field, ma.fields.DateTime):
        added.append(TimeRange())
    elif column is not None and isinstance(field, ma.fields.Integer):
        low, high = integer_bounds(column.type)
        added.append(validate.Range(min=low, max=high))
    elif column is not None and isinstance(field, ma.fields.String):
        length = getattr(column.type, "length", None)
        if isinstance(length, int):
            added.append(validate.Length(max=length))
    # A new list: a schema's fields are shallow copies sharing the declared field's list.
    field.validators = [*field.validators, *added]
    _require(field, where)


def _require(field: ma.fields.Field[Any], where: str) -> None:
    if isinstance(field, ma.fields.Integer) and not _has_range(field):
        raise TypeError(f"{where}: an integer stored in no column needs Range(min=…, max=…)")
    if isinstance(field, ma.fields.String) and not _has_max_length(field):
        raise TypeError(f"{where}: a string stored in no String(n) column needs Length(max=…)")
    if isinstance(field, ma.fields.Dict):
        raise TypeError(f"{where}: free-form objects are not accepted; declare a schema")


def _has_range(field: ma.fields.Field[Any]) -> bool:
    ranges = [v for v in field.validators if isinstance(v, validate.Range)]
    one_of = any(isinstance(v, validate.OneOf) for v in field.validators)
    return one_of or (
        any(r.min is not None for r in ranges) and any(r.max is not None for r in ranges)
    )


def _has_max_length(field: ma.fields.Field[Any]) -> bool:
    return any(
        (isinstance(v, validate.Length) and v.max is not None)
        or isinstance(v, validate.OneOf)
        or (isinstance(v, validate.Length) and v.equal is not None)
        for v in field.validators
    )
