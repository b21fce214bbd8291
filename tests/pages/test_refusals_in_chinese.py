"""A refusal on a page is in the page's language: Chinese by default, with no English
sentence under the Chinese heading; English when the person picked English."""

from __future__ import annotations

import html
import re

from shop.db import db
from shop.orders import service as orders
from tests.pages.conftest import SHIPPING, csrf_token, make_live_session

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_SENTENCE = re.compile(r"[A-Za-z]+(?:[ ,;]+[A-Za-z]+){2,}")  # three words in a row


def refusals(page: str) -> list[str]:
    found = re.findall(r'class="flash error"[^>]*>(.*?)</p>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", f)).strip() for f in found]


def assert_chinese_only(messages: list[str]) -> None:
    assert messages
    for message in messages:
        assert CHINESE.search(message), message
        assert not ENGLISH_SENTENCE.search(message), message


def buy(pages, live, listing, **changes):
    path = f"/live/{live.id}/buy/{listing.id}"
    form = pages.get(path).get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(form),
        "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', form)[1],
        "qty": "1",
        "name": "王女士",
        "phone": "+86 138 0000 0000",
        "address": "庆元县 1 号",
        "region": "浙江",
        **changes,
    }
    return pages.client.post(path, data=data).get_data(as_text=True)


def test_a_refused_order_on_the_page_says_why_in_chinese(signed_in, make_user, make_product):
    live = make_live_session(make_user("streamer"), [make_product(name="庆元香菇")])
    _, pages = signed_in("buyer")
    over_limit = refusals(buy(pages, live, live.listings[0], qty="6"))
    assert_chinese_only(over_limit)
    assert "每人最多买 5 件" in over_limit[0]
    bad_phone = refusals(buy(pages, live, live.listings[0], phone="call me"))
    assert bad_phone == ["phone: 格式不对。"]


def test_a_refused_cancel_flashes_chinese_and_english_when_english_was_picked(
    signed_in, make_product
):
    buyer, pages = signed_in("buyer")
    order, _ = orders.place_order(
        db.session,
        buyer_id=buyer.id,
        lines=[{"product_id": make_product().id, "qty": 1}],
        shipping=SHIPPING,
        idempotency_key="refusal-zh",
        payment_timeout_s=900,
    )
    db.session.commit()
    page = f"/orders/{order.id}"
    pages.submit(page, f"/orders/{order.id}/cancel")
    again = pages.submit(page, f"/orders/{order.id}/cancel")
    assert again.status_code == 302
    flashed = refusals(pages.get(page).get_data(as_text=True))
    assert_chinese_only(flashed)
    assert "只有未付款" in flashed[0]

    pages.get(f"{page}?lang=en")
    pages.submit(page, f"/orders/{order.id}/cancel")
    english = refusals(pages.get(page).get_data(as_text=True))
    assert english and not CHINESE.search(english[0])
    assert "only unpaid or paid" in english[0]
