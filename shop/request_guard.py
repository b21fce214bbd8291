"""What no request may carry, refused once for every endpoint before any schema sees it.

- JSON nested deeper than MAX_JSON_DEPTH: 400 ``malformed``. Python's JSON parser
  recurses once per level, so a body of 100,000 ``[`` would exhaust the stack inside
  the parser (a RecursionError, a 500); the depth is measured on the raw bytes first.
- Text no database column can store: a NUL (PostgreSQL refuses it; no person typed it)
  or a lone UTF-16 surrogate (``"\\ud800"`` is valid JSON but not encodable as UTF-8,
  so every driver fails on it): 422 ``validation`` naming the field; a NUL in the path
  is a 404.

Query strings, forms and paths are decoded by werkzeug with replacement characters, so
a surrogate can only arrive as a JSON escape; the raw body is searched for the escapes
before paying for a second parse (webargs parses it again anyway).

An endpoint marked ``@reads_raw_body`` (the Stripe webhook, whose signature covers the
exact bytes) parses its body itself with ``loads_json`` and ``unstorable_field``, after
it has checked the signature; the guard leaves its body alone.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any, TypeVar

from flask import current_app, request

from shop.errors import Malformed, NotFound, ValidationFailed
from shop.i18n import _l

#: Deeper than any request we accept (an order is 3 levels) or any Stripe event (about 8).
MAX_JSON_DEPTH = 64

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: ``[``/``{`` → +1 and ``]``/``}`` → −1, read as signed bytes
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
#: what makes a parse worth it: a NUL or surrogate escape, or a number Python refuses
#: to convert (over 4,300 digits)
_LONGEST_NUMBER = 4300
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|[0-9]{%d}" % _LONGEST_NUMBER)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

F = TypeVar("F")


def reads_raw_body(view: F) -> F:
    """Mark a view that checks its own body (see the module docstring)."""
    view._shanhuo_raw_body = True  # type: ignore[attr-defined]
    return view


def json_depth(data: bytes) -> int:
    """How deeply the brackets of a JSON text nest, not counting those inside strings.

    Linear and without recursion: strings dropped by one regex, the brackets turned into
    +1/−1 and summed by C loops (a 15 MiB body takes milliseconds).
    """
    steps = array("b", _JSON_STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0)


def refuse_too_deep(data: bytes) -> None:
    """Raise Malformed when a JSON text nests deeper than ``MAX_JSON_DEPTH``. It nests
    no deeper than it has opening brackets, so most bodies are not measured at all
    (every request passes here)."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return
    if json_depth(data) > MAX_JSON_DEPTH:
        raise Malformed(
            _l(
                "The JSON is nested deeper than %(MAX_JSON_DEPTH)s levels.",
                MAX_JSON_DEPTH=MAX_JSON_DEPTH,
            )
        )


def loads_json(data: bytes) -> Any:
    """Parse a JSON body whose depth is bounded. Raises Malformed."""
    refuse_too_deep(data)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, a 5,000-digit number
        raise Malformed(_l("The request body is not valid JSON.")) from None


def unstorable_field(value: Any, path: str = "") -> tuple[str, str] | None:
    """(dotted path, what is wrong) of the first text no database can store, or None."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return (path, _problem(found.group())) if found else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, inner in items:
        # the path goes into the error answer: a surrogate in a key is shown escaped
        name = str(key).encode("utf-8", "backslashreplace").decode("utf-8")
        where = f"{path}.{name}" if path else name
        problem = unstorable_field(str(key), where) or unstorable_field(inner, where)
        if problem:
            return problem
    return None


def _problem(char: str) -> str:
    if char == "\x00":
        return "NUL character in the input."
    return "Not valid Unicode: a lone surrogate (\\ud800–\\udfff) cannot be stored."


def refuse_unreadable_input() -> None:
    """The before-request hook of every endpoint (see the module docstring)."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    if "\x00" in req.path:
        raise NotFound(_l("No such resource."))
    # Every request pays for this hook (a flash sale's thousands of refusals a second):
    # what cannot be there is not looked for.
    sources: list[Any] = []
    if req.query_string:
        sources.append(req.args.to_dict(flat=False))
    if req.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        sources.append(req.form.to_dict(flat=False))
    if req.is_json:
        view = current_app.view_functions.get(req.endpoint or "")
        data = b"" if getattr(view, "_shanhuo_raw_body", False) else req.get_data(cache=True)
        refuse_too_deep(data)
        if (b"\\u" in data or len(data) >= _LONGEST_NUMBER) and _SUSPECT.search(data):
            sources.append(loads_json(data))
    for source in sources:
        found = unstorable_field(source)
        if found is not None:
            field, problem = found
            raise ValidationFailed(
                _l("Text may not contain NUL characters or lone surrogates."),
                {field or "_schema": [problem]},
            )
