"""Money, weights and percentages on the pages: integer arithmetic, exact to the fen."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from shop.web.format import kg, parse_whole, parse_yuan, percent_bp, yuan
from shop.web.messages import MESSAGES, markup


def test_yuan_from_integer_fen():
    assert yuan(0) == "¥0.00"
    assert yuan(5) == "¥0.05"
    assert yuan(1234) == "¥12.34"
    assert yuan(123_456_789) == "¥1,234,567.89"
    assert yuan(-5) == "-¥0.05"
    assert yuan(None) == "—"


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_agrees_with_decimal_for_any_amount(fen):
    shown = yuan(fen).replace("¥", "").replace(",", "")
    assert Decimal(shown) == Decimal(fen) / 100


@given(st.integers(min_value=0, max_value=10**11 - 1))
def test_a_shown_price_reads_back_to_the_same_fen(fen):
    assert parse_yuan(yuan(fen).replace(",", "")) == fen


def test_parse_yuan_takes_plain_amounts_only():
    assert parse_yuan("12") == 1200
    assert parse_yuan("12.3") == 1230
    assert parse_yuan(" ¥0.05 ") == 5
    assert parse_yuan("１２.５") == 1250  # full-width digits, as Chinese input methods type them
    for bad in ["", "12.345", "-1", "1e3", "12,5", "NaN", "1 2", None]:
        assert parse_yuan(bad) is None, bad
    assert parse_whole("42") == 42
    assert parse_whole("4.2") is None and parse_whole("-4") is None


def test_weights_and_premiums():
    assert kg(123_400) == "123.4 kg"
    assert kg(2_000_000) == "2,000 kg"
    assert kg(1) == "0.001 kg"
    assert percent_bp(1200) == "12%"
    assert percent_bp(1250) == "12.5%"
    assert percent_bp(1005) == "10.05%"


def test_every_message_has_both_languages_and_markup_escapes_its_fields():
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
    html = markup("signed_in_as", "zh-CN", name="<script>")
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert markup("sign_in", "en") == "Sign in"
