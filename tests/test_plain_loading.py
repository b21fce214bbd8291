"""The plain loader of every request schema (``shop.inputs.plain_loader``) against
marshmallow itself: on any input — valid, missing, null, mistyped, out of bounds,
with unknown keys — it either returns exactly what marshmallow loads, or says UNSURE
(and marshmallow decides and words the errors). It may never accept what marshmallow
refuses, nor load a value differently."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import marshmallow as ma
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop import inputs
from shop.inputs import UNSURE, Input, Text, plain_loader


def request_schemas() -> list[type[Input]]:
    """Every request schema of every package (each module imported)."""
    for package in ("shop", "fulfillment", "contracts", "media", "console"):
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)
    found: list[type[Input]] = []
    todo = list(Input.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
STRINGS = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"[0-9+()\- ]{0,14}", fullmatch=True),
    st.sampled_from(["", " ", "  a  ", "138 0000 0000", "x" * 300, "王女士", "2026-12-03"]),
)
INTEGERS = st.one_of(
    st.integers(min_value=-3, max_value=1000), st.integers(min_value=-(2**64), max_value=2**64)
)


def values_for(field: ma.fields.Field[Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values a client might send for the field: mostly of its kind, sometimes not."""
    if isinstance(field, ma.fields.Nested) and depth < 3:
        return st.one_of(data_for(field.schema, depth + 1), JUNK)
    if isinstance(field, ma.fields.List) and depth < 3:
        return st.one_of(st.lists(values_for(field.inner, depth + 1), max_size=3), JUNK)
    if isinstance(field, ma.fields.String | Text):
        return st.one_of(STRINGS, STRINGS, JUNK)
    if isinstance(field, ma.fields.Integer):
        return st.one_of(INTEGERS, INTEGERS, JUNK)
    return JUNK


def data_for(schema: ma.Schema, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    keys = {
        (field.data_key or name): values_for(field, depth)
        for name, field in schema.load_fields.items()
    }
    present = st.fixed_dictionaries({}, optional=keys)
    extra = st.dictionaries(st.sampled_from(["zzz", "id", "lines"]), JUNK, max_size=1)
    return st.one_of(
        present, present, present, st.tuples(present, extra).map(lambda t: {**t[1], **t[0]})
    )


def marshmallow_load(schema: ma.Schema, data: Any) -> tuple[bool, Any]:
    try:
        return True, schema.load(data)
    except ma.ValidationError as error:
        return False, error.messages


@pytest.mark.parametrize("cls", request_schemas(), ids=lambda cls: cls.__qualname__)
def test_the_plain_loader_loads_what_marshmallow_loads_or_is_unsure(app, cls, monkeypatch):
    schema = cls()
    loader = plain_loader(schema, schema.unknown)
    if loader is None:
        pytest.skip(f"{cls.__qualname__} is loaded by marshmallow only")
    # The reference: marshmallow alone, nested schemas included.
    monkeypatch.setattr(inputs, "PLAIN_LOADING", False)

    @settings(
        max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(data=data_for(schema))
    def check(data: dict[str, Any]) -> None:
        fast = loader(data)
        if fast is UNSURE:
            return
        ok, loaded = marshmallow_load(schema, data)
        assert ok, f"plain loader accepted what marshmallow refuses: {loaded}"
        assert fast == loaded

    with app.app_context():
        check()


def test_a_valid_order_is_loaded_plainly_and_an_invalid_one_by_marshmallow(app):
    from shop.orders.schemas import OrderIn

    schema = OrderIn()
    loader = plain_loader(schema, schema.unknown)
    shipping = {"name": " 王女士 ", "phone": "138 0000 0000", "address": "庆元县", "region": "ZJ"}
    order = {"lines": [{"listing_id": 3, "qty": 2}], "shipping": shipping}
    assert loader(order) == {
        "lines": [{"listing_id": 3, "qty": 2}],
        "shipping": {**shipping, "name": "王女士"},
    }
    for bad in (
        {**order, "lines": [{"listing_id": 3, "product_id": 4, "qty": 1}]},  # validates_schema
        {**order, "lines": [{"listing_id": 3, "qty": 0}]},
        {**order, "lines": [{"listing_id": 3, "qty": True}]},
        {**order, "shipping": {**shipping, "phone": "138\n"}},
        {**order, "coupon": "FREE"},
        {"lines": order["lines"]},
    ):
        assert loader(bad) is UNSURE
        with pytest.raises(ma.ValidationError):
            schema.load(bad)
