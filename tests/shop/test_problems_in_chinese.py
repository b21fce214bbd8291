"""The API answers a refusal in Chinese when Accept-Language prefers zh, in English
otherwise (and when nothing is asked): the same `type`, status and field names."""

from __future__ import annotations

import re

import pytest

from tests.shop.conftest import SHIPPING

CHINESE = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORDS = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z]{2,}){2,}")  # three English words in a row


@pytest.fixture
def world(auth, make_product, make_live_session):
    product = make_product(name="庆元香菇", stock=100)
    session = make_live_session([(product, 4990, 2, 1)])
    _, buyer = auth("buyer")
    return session.listings[0], buyer


def order(client, headers, lines, language, shipping=SHIPPING, key="k"):
    return client.post(
        "/api/v1/orders",
        json={"lines": lines, "shipping": shipping},
        headers={**headers, "Idempotency-Key": f"{key}-{language}", "Accept-Language": language},
    )


def in_both(send):
    """The problem sent with zh-CN and with en: (Chinese body, English body)."""
    zh, en = send("zh-CN,zh;q=0.9,en;q=0.8"), send("en")
    assert zh.status_code == en.status_code
    assert zh.mimetype == en.mimetype == "application/problem+json"
    return zh.get_json(), en.get_json()


def assert_chinese(problem):
    for words in (problem["title"], problem["detail"]):
        assert CHINESE.search(words) and not ENGLISH_WORDS.search(words), words


def assert_english(problem):
    for words in (problem["title"], problem["detail"]):
        assert not CHINESE.search(words) and re.search(r"[A-Za-z]{3}", words), words


def test_out_of_stock_in_chinese_and_english_without_internal_ids(client, world):
    listing, buyer = world
    zh, en = in_both(
        lambda lang: order(client, buyer, [{"listing_id": listing.id, "qty": 2}], lang)
    )
    assert zh["type"] == en["type"] == "limit"  # 2 > the per-buyer limit of 1
    assert zh["per_buyer_limit"] == en["per_buyer_limit"] == 1
    assert_chinese(zh)
    assert_english(en)
    assert "每人最多买 1 件" in zh["detail"]
    assert not re.search(r"listing \d", en["detail"])  # no internal ids in the sentence


def test_more_than_is_left_in_chinese(client, auth, make_product, make_live_session):
    product = make_product(stock=100)
    listing = make_live_session([(product, 4990, 1, None)]).listings[0]
    _, buyer = auth("buyer")
    zh, en = in_both(
        lambda lang: order(client, buyer, [{"listing_id": listing.id, "qty": 2}], lang)
    )
    assert zh["type"] == en["type"] == "out-of-stock"
    assert zh["detail"] == "只剩 1 件了。" and en["detail"] == "Only 1 left."
    assert zh["title"] == "库存不足" and en["title"] == "Not enough stock"


def test_a_bad_phone_is_explained_in_chinese_under_the_same_field_name(client, world):
    listing, buyer = world
    bad = {**SHIPPING, "phone": "call me"}
    zh, en = in_both(
        lambda lang: order(client, buyer, [{"listing_id": listing.id, "qty": 1}], lang, bad)
    )
    assert zh["type"] == en["type"] == "validation"
    assert zh["errors"].keys() == en["errors"].keys() == {"shipping.phone"}
    assert zh["errors"]["shipping.phone"] == ["格式不对。"]
    assert en["errors"]["shipping.phone"] == ["String does not match expected pattern."]
    assert_chinese(zh)
    assert_english(en)


def test_a_missing_field_and_a_bad_quantity_are_chinese_too(client, world):
    listing, buyer = world
    zh = order(client, buyer, [{"listing_id": listing.id, "qty": 0}], "zh", {}).get_json()
    assert zh["errors"]["shipping.phone"] == ["这是必填项。"]
    assert all(CHINESE.search(m) for found in zh["errors"].values() for m in found), zh


def test_not_found_and_forbidden_in_both_languages(client, auth):
    _, buyer = auth("buyer")
    zh, en = in_both(
        lambda lang: client.get("/api/v1/orders/999999", headers={**buyer, "Accept-Language": lang})
    )
    assert zh["type"] == en["type"] == "not-found"
    assert zh["title"] == "找不到" and en["title"] == "Not found"
    assert_chinese(zh)
    zh, en = in_both(
        lambda lang: client.post(
            "/api/v1/products", json={}, headers={**buyer, "Accept-Language": lang}
        )
    )
    assert zh["type"] == en["type"] == "forbidden"
    assert_chinese(zh)
    assert_english(en)


def test_a_url_that_does_not_exist_is_chinese_too(client):
    zh, en = in_both(lambda lang: client.get("/api/v1/nowhere", headers={"Accept-Language": lang}))
    assert zh["type"] == en["type"] == "not-found"
    assert_chinese(zh)
    assert en["title"] == "Not Found"


def test_without_accept_language_the_api_stays_english(client, auth):
    _, buyer = auth("buyer")
    problem = client.get("/api/v1/orders/999999", headers=buyer).get_json()
    assert problem["title"] == "Not found" and problem["detail"].startswith("No order")


def test_our_own_field_messages_are_chinese_too(client, world):
    listing, buyer = world
    line = {"listing_id": listing.id, "qty": 1}
    zh, en = in_both(lambda lang: order(client, buyer, [line, line], lang))
    assert zh["type"] == en["type"] == "validation"
    assert zh["errors"] == {"lines.1.listing_id": ["已经在另一行了。"]}
    assert en["errors"] == {"lines.1.listing_id": ["Already on another line."]}


def test_a_state_in_a_refusal_is_said_in_the_readers_language(client, world):
    listing, buyer = world
    placed = order(client, buyer, [{"listing_id": listing.id, "qty": 1}], "en")
    assert placed.status_code == 201, placed.get_json()
    order_id = placed.get_json()["id"]
    cancel = f"/api/v1/orders/{order_id}/cancel"
    assert client.post(cancel, headers=buyer).status_code == 200

    zh, en = in_both(lambda lang: client.post(cancel, headers={**buyer, "Accept-Language": lang}))
    assert zh["type"] == en["type"] == "conflict"
    assert "已取消" in zh["detail"] and "cancelled" not in zh["detail"]
    assert "cancelled" in en["detail"]
