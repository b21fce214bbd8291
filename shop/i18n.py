"""Messages people read, Chinese first: Flask-Babel with the ``zh_CN`` gettext catalog in
``shop/translations`` (README, Translations).

English is the msgid. The API answers in Chinese when ``Accept-Language`` prefers ``zh``
and in English otherwise (clients that send nothing keep today's English); pages answer in
the language the person chose (the toggle/cookie, Chinese by default). Refusals keep their
words lazy (``_l``) and are put into words when they are read, in that request's language.

The compiled ``.mo`` is not committed: it is built from the ``.po`` when the app starts if
it is missing or older than the ``.po``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, TypeAlias

import flask_babel
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, has_app_context, has_request_context, request
from flask_babel import Babel, Domain, LazyString, get_locale

log = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).parent / "translations"
CHINESE = "zh_CN"
ENGLISH = "en"

#: Message fields that hold a state word (``paid``, ``claimed`` …): put into words too,
#: so a Chinese sentence never carries an English state.
STATE_FIELDS = frozenset({"state", "current", "to_state"})


def gettext(message: str, **variables: Any) -> str:
    """Flask-Babel's ``gettext``, with a request's catalog found once per request: a
    flash sale's thousands of refusals a second put two messages each into words, and
    Flask-Babel's lookups of the context, domain and locale took 8 µs a message."""
    if not has_request_context():
        return flask_babel.gettext(message, **variables)
    kept = request._get_current_object().__dict__  # type: ignore[attr-defined]
    found = kept.get(_CATALOG)
    if found is None:
        # The locale Flask-Babel would select (``select_locale`` is its selector),
        # without its lookups of the context, domain and locale (another 10 µs).
        found = kept[_CATALOG] = _Babel.catalogs.of(select_locale())
    text = found.ugettext(message)
    return text % variables if variables else text


_CATALOG = "shanhuo.catalog"


def _l(message: str, **variables: Any) -> LazyString:
    """A message translated when it is read (``_l("Only %(left)s left.", left=2)``); a
    state word in a state field is translated with it."""
    for name in STATE_FIELDS & variables.keys():
        if isinstance(variables[name], str):
            word = STATE_WORDS.get(variables[name], variables[name])
            variables[name] = LazyString(gettext, word)
    return LazyString(gettext, message, **variables)


#: The type a refusal's words may have: plain (already in words) or lazy.
Words: TypeAlias = str | LazyString


def N_(message: str) -> str:
    """Marks a message for extraction only (titles kept as class attributes)."""
    return message


#: Every state a refusal may name, as people say it (the msgids the catalog translates).
STATE_WORDS = {
    "pending_payment": N_("waiting for payment"),
    "paid": N_("paid"),
    "cancelled": N_("cancelled"),
    "expired": N_("expired"),
    "packing": N_("being packed"),
    "packed": N_("packed"),
    "shipped": N_("shipped"),
    "delivered": N_("delivered"),
    "refunded": N_("refunded"),
    "queued": N_("waiting in the queue"),
    "claimed": N_("claimed"),
    "scheduled": N_("scheduled"),
    "live": N_("live"),
    "ended": N_("ended"),
    "draft": N_("draft"),
    "active": N_("active"),
    "completed": N_("completed"),
    "terminated": N_("terminated"),
    "open": N_("open"),
    "pending": N_("pending"),
    "sending": N_("being sent"),
    "failed": N_("failed"),
    "done": N_("done"),
    "dead": N_("dead"),
}


#: The two locales, parsed once (Flask-Babel would parse the name on every request).
_LOCALES = {name: Locale.parse(name) for name in (CHINESE, ENGLISH)}
#: An API request's locale by its Accept-Language header, each header parsed once (a
#: flash sale's thousands of refusals send a handful of different ones).
_API_LOCALES: dict[str | None, Locale] = {}


def select_locale() -> Locale:
    """The API: Accept-Language (zh preferred → Chinese); pages: the person's choice."""
    if not has_request_context():
        return _LOCALES[ENGLISH]
    if request.path.startswith("/api"):
        header = request.headers.get("Accept-Language")
        found = _API_LOCALES.get(header)
        if found is None:
            best = request.accept_languages.best_match(["zh", "zh-CN", "en"], default=ENGLISH)
            found = _LOCALES[CHINESE if best.lower().startswith("zh") else ENGLISH]
            if len(_API_LOCALES) < 1000:  # what any client may send: a bounded memo
                _API_LOCALES[header] = found
        return found
    from shop.web import current_lang

    return _LOCALES[ENGLISH if current_lang() == "en" else CHINESE]


class _Catalogs(Domain):
    """The catalog of the request's locale, loaded once per process.

    babel reads "zh_CN" as zh_Hans_CN and would then look for a ``zh_Hans_CN`` (or
    ``zh``) directory, never ``zh_CN``: any Chinese locale reads the ``zh_CN`` catalog."""

    def get_translations(self) -> NullTranslations:
        if not has_app_context():
            return NullTranslations()
        return self.of(get_locale())

    def of(self, locale: Locale | None) -> NullTranslations:
        key = str(locale)
        found = self.cache.get(key)
        if found is None:
            name = CHINESE if locale is not None and locale.language == "zh" else key
            found = self.cache[key] = Translations.load(str(TRANSLATIONS), [name], "messages")
        return found


class _Babel(Babel):
    catalogs = _Catalogs()

    @property
    def domain_instance(self) -> Domain:
        return self.catalogs


def compile_catalogs(root: Path = TRANSLATIONS) -> None:
    """Write each ``messages.mo`` from its ``.po`` when missing or stale (atomically:
    several workers may start at once)."""
    for po_path in root.glob("*/LC_MESSAGES/messages.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po:
            catalog = read_po(po)
        try:
            fd, tmp = tempfile.mkstemp(dir=po_path.parent, suffix=".mo.tmp")
        except OSError as error:  # a read-only install: compile at build time instead
            log.warning("cannot compile %s (%s): messages stay English", po_path, error)
            continue
        with os.fdopen(fd, "wb") as mo:
            write_mo(mo, catalog)
        os.replace(tmp, mo_path)


def init_app(app: Flask) -> None:
    compile_catalogs()
    _Babel(app, locale_selector=select_locale, default_locale=ENGLISH)


# ------------------------------------------------------------- validation messages
#
# marshmallow formats its messages (``"Length must be between {min} and {max}."``)
# before we see them; each known template is matched back and put into words again in
# the reader's language with the same values.

#: The English templates of the validation messages our schemas can produce.
VALIDATION_TEMPLATES: list[str] = [
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid input type."),
    N_("Invalid value."),
    N_("Unknown field."),
    N_("Not a valid string."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid boolean."),
    N_("Not a valid date."),
    N_("Not a valid datetime."),
    N_("Not a valid list."),
    N_("Not a valid mapping type."),
    N_("Not a valid email address."),
    N_("Not a valid URL."),
    N_("Not a valid UUID."),
    N_("Not a valid decimal."),
    N_("Not a valid time."),
    N_("Not a valid tuple."),
    N_("Invalid data type."),
    N_("Invalid type."),
    N_("Invalid input."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_('"{input}" cannot be formatted as a date.'),
    N_('"{input}" cannot be formatted as a datetime.'),
    N_('"{input}" cannot be formatted as a time.'),
    N_("Not a valid utf-8 string."),
    N_("Number too large."),
    N_("Not a valid aware datetime."),
    N_("Not a valid naive datetime."),
    N_("Shorter than minimum length {min}."),
    N_("Longer than maximum length {max}."),
    N_("Length must be between {min} and {max}."),
    N_("Length must be {equal}."),
    N_("Must be greater than or equal to {min}."),
    N_("Must be greater than {min}."),
    N_("Must be less than or equal to {max}."),
    N_("Must be less than {max}."),
    N_("Must be greater than or equal to {min} and less than or equal to {max}."),
    N_("Must be greater than {min} and less than {max}."),
    N_("Must be greater than or equal to {min} and less than {max}."),
    N_("Must be greater than {min} and less than or equal to {max}."),
    N_("Must be one of: {choices}."),
    N_("Must be equal to {other}."),
    N_("String does not match expected pattern."),
    N_("Must be a date from {min} to {max}."),
    N_("Must be a time from {min} to {max}."),
    N_("Give exactly one of listing_id and product_id."),
    N_("The request body is not valid JSON."),
]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex + "$")


#: Longest first: "Must be greater than {min}." would also match the start of
#: "Must be greater than 1 and less than 5.".
_PATTERNS = [
    (template, _pattern(template))
    for template in sorted(VALIDATION_TEMPLATES, key=len, reverse=True)
]


def translate_validation(message: Any) -> str:
    """One validation message in the reader's language (as given if we do not know it)."""
    text = str(message)
    translated = gettext(text)
    if translated != text:  # a message of our own, word for word
        return translated
    for template, pattern in _PATTERNS:
        found = pattern.match(text)
        if found:
            return gettext(template).format(**found.groupdict())
    return text


def translate_errors(messages: dict[str, list[str]]) -> dict[str, list[str]]:
    return {field: [translate_validation(m) for m in found] for field, found in messages.items()}
