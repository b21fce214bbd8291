"""Every message a person reads has its Chinese words in the zh_CN catalog: the problems'
titles and details, the validation messages, werkzeug's own HTTP errors."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask
from werkzeug.exceptions import default_exceptions

from shop import i18n
from shop.errors import DomainError
from shop.http_words import HTTP_WORDS
from shop.inputs import Input

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shop", "fulfillment", "contracts", "media", "console")
PO = ROOT / "shop" / "translations" / "zh_CN" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_l": None, "N_": None, "gettext": None}


def catalog() -> dict[str, str]:
    with PO.open("rb") as po:
        return {str(m.id): str(m.string) for m in read_po(po) if m.id}


def extracted() -> set[str]:
    """What ``pybabel extract -k _l -k N_ -k gettext`` finds in the code."""
    found: set[str] = set()
    for package in PACKAGES:
        for _, _, message, _, _ in extract_from_dir(
            ROOT / package, [("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s|\{(\w+)\}", text))


def test_every_catalog_entry_has_chinese_words_with_the_same_placeholders():
    entries = catalog()
    assert len(entries) > 200
    for english, chinese in entries.items():
        assert chinese.strip(), f"no Chinese for {english!r}"
        words = re.sub(r"%\(\w+\)s|\{\w+\}", "", english)
        if re.search(r"[A-Za-z]{3}", words):  # ("`%(field)s`: %(problem)s" has no words)
            assert re.search(r"[\u4e00-\u9fff]", chinese), f"not Chinese: {chinese!r}"
        assert placeholders(chinese) == placeholders(english), english


def test_every_message_in_the_code_is_in_the_catalog():
    missing = sorted(extracted() - catalog().keys())
    assert not missing, "run pybabel extract/update (README, Translations) and translate:\n" + (
        "\n".join(missing)
    )


def _all_subclasses(cls: type) -> list[type]:
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], f"{package}."):
            if ".tests" not in info.name:
                importlib.import_module(info.name)
    seen: list[type] = []
    todo = [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def test_every_problem_type_has_a_chinese_title():
    entries = catalog()
    errors = [DomainError, *_all_subclasses(DomainError)]
    assert len(errors) > 30
    untranslated = [e.__name__ for e in errors if not entries.get(e.title)]
    assert not untranslated


def test_werkzeugs_own_http_errors_are_in_the_catalog_word_for_word():
    entries = catalog()
    for status, (name, description) in HTTP_WORDS.items():
        error = default_exceptions[status]()
        assert (error.name, error.description) == (name, description)
        assert entries[name] and entries[description]


def _validation_messages() -> set[str]:
    """Every message our request schemas' fields and validators can give."""
    messages: set[str] = set()
    for schema_class in [Input, *_all_subclasses(Input)]:
        try:
            schema = schema_class()
        except TypeError:
            continue  # needs arguments: its fields are checked where it is used
        for field in _fields(schema):
            kinds = {"input": "x", "obj_type": getattr(field, "OBJ_TYPE", "")}
            for awareness in ("aware", "naive"):
                messages.update(
                    str(m).format(**kinds, awareness=awareness)
                    for key, m in field.error_messages.items()
                    if key != "invalid_awareness" or kinds["obj_type"] == "datetime"
                )
            for validator in field.validators:
                messages.update(_validator_messages(validator))
    return messages


def _fields(schema: ma.Schema) -> list[Any]:
    out = []
    for field in schema.fields.values():
        out.append(field)
        if isinstance(field, ma.fields.List):
            out.append(field.inner)
        if isinstance(field, ma.fields.Nested):
            out.extend(_fields(field.schema))
    return out


#: Range's words for its bounds, parts of its messages rather than messages.
FRAGMENTS = {"message_gte", "message_gt", "message_lte", "message_lt"}


def _validator_messages(validator: Any) -> set[str]:
    names = {n for n in [*vars(type(validator)), *vars(validator)] if n.startswith(("mess", "err"))}
    values = [getattr(validator, n) for n in names - FRAGMENTS]
    return {v for v in values if isinstance(v, str)}


def test_every_validation_message_our_schemas_give_is_put_into_chinese(app: Flask):
    messages = _validation_messages()
    assert "Missing data for required field." in messages
    assert "String does not match expected pattern." in messages
    with app.test_request_context("/api/v1/products", headers={"Accept-Language": "zh-CN"}):
        untranslated = sorted(m for m in messages if i18n.translate_validation(m) == m)
    assert not untranslated


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("Length must be between 1 and 200.", "长度须在 1 到 200 之间。"),
        ("Must be greater than or equal to 1 and less than or equal to 5.", "须在 1 到 5 之间"),
        ("Must be one of: paid, shipped.", "须是以下之一：paid, shipped。"),
        ("Must be a date from 2000-01-01 to 2100-12-31.", "2000-01-01 到 2100-12-31"),
    ],
)
def test_formatted_validation_messages_keep_their_values_in_chinese(app, english, chinese):
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "zh"}):
        assert chinese in i18n.translate_validation(english)
    with app.test_request_context("/api/v1/x", headers={"Accept-Language": "en"}):
        assert i18n.translate_validation(english) == english


def test_the_compiled_catalog_is_rebuilt_from_a_newer_po(tmp_path):
    po_dir = tmp_path / "zh_CN" / "LC_MESSAGES"
    po_dir.mkdir(parents=True)
    (po_dir / "messages.po").write_bytes(PO.read_bytes())
    i18n.compile_catalogs(tmp_path)
    assert (po_dir / "messages.mo").stat().st_size > 1000
