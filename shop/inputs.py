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

from collections.abc import Mapping
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


#: ``Input.load`` tries the plain loader first (off only to compare it with marshmallow)
PLAIN_LOADING = True


class Input(ma.Schema):
    """Base of every request schema (body, query, headers): see the module docstring.

    ``load`` first tries the schema's plain loader (``plain_loader``): the same fields,
    validators and schema checks, without marshmallow's machinery for collecting
    errors. Whatever it is not sure of — a missing or wrong value, an unknown key, a
    field it does not know how to read — is loaded by marshmallow, which finds and
    words every error; so an input is refused or accepted exactly as before, only a
    valid one is read faster (a third of a flash sale's refusal was marshmallow).
    """

    OPTIONS_CLASS = InputOpts

    def load(
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: Any = None,
        unknown: str | None = None,
    ) -> Any:
        if PLAIN_LOADING and many is None and partial is None:
            loaders: dict[str | None, Any] = self.__dict__.setdefault("_plain_loaders", {})
            if unknown not in loaders:
                loaders[unknown] = plain_loader(self, unknown or self.unknown)
            loader = loaders[unknown]
            if loader is not None:
                result = loader(data)
                if result is not UNSURE:
                    return result
        return super().load(data, many=many, partial=partial, unknown=unknown)  # type: ignore[arg-type]

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


# ------------------------------------------------------------------ the plain loader

#: What a plain loader returns when marshmallow has to decide (and word the errors).
UNSURE: Any = object()
_MISSING = ma.missing
_UNREADABLE = (ma.decorators.PRE_LOAD, ma.decorators.POST_LOAD, ma.decorators.VALIDATES)


def plain_loader(schema: ma.Schema, unknown: str) -> Any:
    """A function that loads what ``schema.load`` would from a valid input, and returns
    UNSURE for anything else; None when the schema has what it cannot follow
    (``many``, pre/post-load or field-level ``@validates`` hooks, dotted attributes).

    Each field is read by a rule made from the field itself: strings, ``Text`` and
    integers (their own validators called directly), nested ``Input`` schemas and
    lists of them are followed; any other field is read by its own ``deserialize``.
    The schema's ``@validates_schema`` methods run on the result, as marshmallow runs
    them. A rule never decides a refusal: anything doubtful is UNSURE.
    """
    hooks = getattr(schema, "_hooks", {})
    if schema.many or any(hooks.get(tag) for tag in _UNREADABLE):
        return None
    plan = []
    for attr_name, field in schema.load_fields.items():
        attribute = field.attribute or attr_name
        key = field.data_key if field.data_key is not None else attr_name
        rule = _rule(field, key)
        if "." in attribute or rule is None:
            return None
        plan.append((key, attribute, rule))
    known = frozenset(key for key, _, _ in plan)
    checks = [
        (getattr(schema, name), bool(kwargs.get("pass_original")))
        for name, _, kwargs in hooks.get(ma.decorators.VALIDATES_SCHEMA, ())
    ]
    dict_class = schema.dict_class

    def load(data: Any) -> Any:
        if not isinstance(data, Mapping):
            return UNSURE
        result = dict_class()
        for key, attribute, rule in plan:
            value = rule(data.get(key, _MISSING), data)
            if value is UNSURE:
                return UNSURE
            if value is not _MISSING:
                result[attribute] = value
        if unknown != ma.EXCLUDE:
            extra = data.keys() - known
            if extra:
                if unknown == ma.RAISE:
                    return UNSURE
                for key in extra:
                    result[key] = data[key]
        for check, pass_original in checks:
            try:
                if pass_original:
                    check(result, data, partial=schema.partial, many=False, unknown=unknown)
                else:
                    check(result, partial=schema.partial, many=False, unknown=unknown)
            except ma.ValidationError:
                return UNSURE
        return result

    return load


def _valid(validators: tuple[Any, ...], value: Any) -> bool:
    """marshmallow's ``And`` of the validators, as a yes or no."""
    for validator in validators:
        try:
            if validator(value) is False and not isinstance(validator, validate.Validator):
                return False
        except ma.ValidationError:
            return False
    return True


def _rule(field: ma.fields.Field[Any], key: str | None) -> Any:
    """``rule(raw, data)``: the field's value, _MISSING (leave it out) or UNSURE."""
    kind = type(field)
    if field.pre_load or field.post_load:
        return _generic(field, key)
    if kind._deserialize is Text._deserialize:  # type: ignore[comparison-overlap]
        read = _text
    elif kind._deserialize is ma.fields.String._deserialize:  # type: ignore[comparison-overlap]
        read = _string
    elif (
        kind._deserialize is ma.fields.Number._deserialize  # type: ignore[comparison-overlap]
        and kind._validated is ma.fields.Integer._validated  # type: ignore[attr-defined,comparison-overlap]
    ):
        read = _integer
    elif (
        isinstance(field, ma.fields.Nested)
        and kind._deserialize is ma.fields.Nested._deserialize  # type: ignore[comparison-overlap]
        and kind._load is ma.fields.Nested._load  # type: ignore[attr-defined,comparison-overlap]
        and not field.many
        and isinstance(field.schema, Input)
    ):
        inner_schema = field.schema
        read = plain_loader(inner_schema, field.unknown or inner_schema.unknown)
        if read is None:
            return _generic(field, key)
    elif (
        isinstance(field, ma.fields.List) and kind._deserialize is ma.fields.List._deserialize  # type: ignore[comparison-overlap]
    ):
        item = _rule(field.inner, None)
        if item is None:
            return None

        def read(raw: Any) -> Any:
            if type(raw) is not list:
                return UNSURE
            values = [item(each, None) for each in raw]
            return UNSURE if any(v is UNSURE for v in values) else values

    else:
        return _generic(field, key)
    return _checked(field, read)


def _checked(field: ma.fields.Field[Any], read: Any) -> Any:
    """A field read by ``read``, with ``deserialize``'s rules for a missing or null value
    and its validators."""
    validators = tuple(field.validators)
    required, allow_none, default = field.required, field.allow_none, field.load_default

    def rule(raw: Any, data: Any) -> Any:
        if raw is _MISSING:
            if required:
                return UNSURE
            return default() if callable(default) else default
        if raw is None:
            return None if allow_none else UNSURE
        value = read(raw)
        if value is UNSURE or not _valid(validators, value):
            return UNSURE
        return value

    return rule


def _generic(field: ma.fields.Field[Any], key: str | None) -> Any:
    """A field read by its own ``deserialize``."""

    def rule(raw: Any, data: Any) -> Any:
        try:
            return field.deserialize(raw, key, data)
        except ma.ValidationError:
            return UNSURE

    return rule


def _string(raw: Any) -> Any:
    return raw if type(raw) is str else UNSURE


def _text(raw: Any) -> Any:
    return raw.strip() if type(raw) is str else UNSURE


def _integer(raw: Any) -> Any:
    return raw if type(raw) is int else UNSURE
