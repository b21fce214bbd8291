"""The pages in a real browser (Debian's headless Chromium), at a phone's 360×740.

A villager claims, sees the slip, completes and sees the earnings rise; a farmer's
statement matches the API; a streamer pins a product and a second browser on the
storefront sees the pin and the remaining count change without reloading — then buys
and pays. Every page visited passes the accessibility check and is photographed.
"""

from __future__ import annotations

from typing import Any

import pytest

from shop.accounts import service as accounts
from shop.db import db
from shop.orders import service as orders
from shop.web.format import yuan
from tests.conftest import TEST_PASSWORD
from tests.pages.browser import check_accessible, settle, sign_in, skip_reason
from tests.pages.conftest import (
    SHIPPING,
    make_farmer_statement,
    make_live_session,
    make_paid_order,
    make_workshop_with,
)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_a_villager_claims_sees_the_slip_completes_and_earns(
    live_server, phone, screenshot, make_user, make_product
):
    villager = make_user("villager")
    make_workshop_with(villager)
    product = make_product(name="庆元香菇 Qingyuan shiitake", packing_rate_fen=65)
    order_id = make_paid_order(make_user("buyer"), product, qty=3)
    email = villager.email
    settle()

    page = phone()
    page.goto("/login")
    check_accessible(page)
    screenshot(page, "login")
    sign_in(page, email, TEST_PASSWORD)
    assert page.url.endswith("/workshop")
    expect(page.locator("#earned-today")).to_have_text("¥0.00")
    check_accessible(page)

    page.get_by_role("button", name="领取下一个任务").click()
    task = page.locator("section[id^=task-]")
    expect(task).to_contain_text(f"订单 #{order_id}")
    expect(task).to_contain_text("3 ×")
    expect(task).to_contain_text("浙江 Zhejiang")
    check_accessible(page)
    screenshot(page, "workshop")

    # the printable slip page (tested in test_console_browser), and the PNG slip beside it
    slip_url = page.locator("#slip-link").get_attribute("href") + ".png"
    stranger = phone().context.request.get(slip_url)  # not signed in: the login page
    assert stranger.headers["content-type"].startswith("text/html")
    slip_page = page.context.new_page()
    response = slip_page.goto(slip_url)
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert slip_page.evaluate("document.images[0].naturalWidth") == 812
    slip_page.close()

    page.get_by_role("button", name="打包好了").click()
    expect(page.locator("#earned-today")).to_have_text("¥1.95")
    expect(page.locator("#earned-week")).to_have_text("¥1.95")
    expect(page.get_by_role("status")).to_contain_text("¥1.95")
    expect(page.get_by_role("button", name="领取下一个任务")).to_be_visible()


def test_a_farmers_statement_matches_the_api(
    live_server, phone, screenshot, make_user, make_product
):
    farmer = make_user("farmer")
    make_farmer_statement(farmer, make_product(name="庆元鲜香菇 fresh shiitake"))
    token, _ = accounts.issue_token(db.session, farmer, ttl_s=600)
    db.session.commit()
    email = farmer.email
    settle()

    page = phone()
    sign_in(page, email, TEST_PASSWORD)
    assert page.url.endswith("/farmer")
    check_accessible(page)
    screenshot(page, "farmer")

    api = page.context.request
    headers = {"Authorization": f"Bearer {token}"}
    deliveries = api.get("/api/v1/farmers/me/deliveries", headers=headers).json()["items"]
    payouts = api.get("/api/v1/farmers/me/payouts", headers=headers).json()
    assert len(deliveries) == 2
    for delivery in deliveries:
        shown = page.locator(f"[data-delivery-id='{delivery['id']}']")
        expect(shown.locator("[data-field=amount]")).to_have_text(yuan(delivery["amount_fen"]))
    for payout in payouts["items"]:
        shown = page.locator(f"[data-payout-id='{payout['id']}']")
        expect(shown.locator("[data-field=amount]")).to_have_text(yuan(payout["amount_fen"]))
        expect(shown.locator("[data-field=reason]")).to_contain_text("还没有收款账户")
    for name in ("delivered_fen", "paid_fen", "pending_fen"):
        expect(page.locator(f"[data-total={name}]")).to_have_text(yuan(payouts["totals"][name]))


def test_a_pin_and_a_sale_reach_the_storefront_without_reloading(
    live_server, phone, screenshot, make_user, make_product
):
    streamer = make_user("streamer")
    buyer = make_user("buyer")
    other_buyer = make_user("buyer")
    live = make_live_session(
        streamer,
        [make_product(name="庆元香菇 Qingyuan shiitake"), make_product(name="白木耳 White fungus")],
    )
    session_id = live.id
    shiitake_id, fungus_id = (listing.id for listing in live.listings)
    streamer_email, buyer_email, other_buyer_id = streamer.email, buyer.email, other_buyer.id
    settle()

    console = phone()
    sign_in(console, streamer_email, TEST_PASSWORD)
    assert console.url.endswith("/studio")
    check_accessible(console)
    screenshot(console, "studio")
    console.goto(f"/studio/sessions/{session_id}")
    check_accessible(console)

    shop = phone()  # a second browser: the buyers' storefront
    shop.goto(f"/live/{session_id}")
    expect(shop.locator("#nothing-pinned")).to_be_visible()
    shop.evaluate("window.notReloaded = true")

    console.locator(f"[data-pin='{fungus_id}']").click()
    expect(console.locator(f"[data-listing-id='{fungus_id}']")).to_have_class(
        "card listing is-pinned"
    )
    pinned = shop.locator(f"#pinned [data-listing-id='{fungus_id}']")
    expect(pinned).to_be_visible()
    expect(pinned).to_contain_text("白木耳 White fungus")
    expect(shop.locator("#nothing-pinned")).to_be_hidden()

    # Someone else buys two boxes of shiitake: both pages see 10 → 8, the console the order.
    orders.place_order(
        db.session,
        buyer_id=other_buyer_id,
        lines=[{"listing_id": shiitake_id, "qty": 2}],
        shipping=SHIPPING,
        idempotency_key="browser-other-buyer",
        payment_timeout_s=900,
    )
    db.session.commit()
    settle()
    expect(shop.locator(f"[data-remaining-for='{shiitake_id}']")).to_have_text("8")
    expect(console.locator(f"[data-remaining-for='{shiitake_id}']")).to_have_text("8")
    expect(console.locator("[data-stat=orders]")).to_have_text("1")
    assert shop.evaluate("window.notReloaded") is True
    assert console.locator("#recent-orders").inner_text().startswith("#")
    check_accessible(shop)
    screenshot(shop, "storefront")
    console.locator("#live-panel").scroll_into_view_if_needed()
    screenshot(console, "studio-session")

    # The buyer buys the pinned product: sign in, order, pay in the sandbox.
    shop.locator(f"#pinned [data-buy-for='{fungus_id}']").click()
    assert "/login" in shop.url
    shop.fill("#email", buyer_email)
    shop.fill("#password", TEST_PASSWORD)
    shop.click("main form button[type=submit]")
    expect(shop.locator("#qty")).to_be_visible()
    check_accessible(shop)
    shop.fill("#qty", "2")
    shop.fill("#name", SHIPPING["name"])
    shop.fill("#phone", SHIPPING["phone"])
    shop.fill("#address", SHIPPING["address"])
    shop.fill("#region", SHIPPING["region"])
    screenshot(shop, "buy")
    shop.get_by_role("button", name="提交订单").click()
    expect(shop.locator("#order-total")).to_have_text("¥59.80")
    check_accessible(shop)
    shop.locator("#pay-button").click()
    expect(shop.locator("#order-state")).to_have_attribute("data-state", "paid")
    screenshot(shop, "order-paid")
    expect(console.locator(f"[data-remaining-for='{fungus_id}']")).to_have_text("8")
    # A payment moves no stock, so no event: the console looks again every 10 s.
    expect(console.locator("[data-stat=paid_orders]")).to_have_text("1", timeout=15_000)


def test_english_pages_are_english_and_still_accessible(live_server, phone, make_user):
    villager = make_user("villager")
    make_workshop_with(villager)
    email = villager.email
    settle()
    page = phone("en")
    page.goto("/login?lang=en")
    sign_in(page, email, TEST_PASSWORD)
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.get_by_role("button", name="Claim the next task")).to_be_visible()
    check_accessible(page)


def test_the_accessibility_check_catches_what_it_is_for(browser):
    from tests.pages.browser import ACCESSIBILITY_CHECK, PHONE

    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.set_content(
            "<html><body><input name=q>"
            "<button style='color:#999;background:#fff;height:30px'>Go</button>"
            "<div style='width:900px'>wide</div></body></html>"
        )
        problems = page.evaluate(ACCESSIBILITY_CHECK)["problems"]
    finally:
        context.close()
    assert "<html> has no lang" in problems
    assert "no label: q" in problems
    assert any(p.startswith("contrast 2.85") for p in problems), problems
    assert any(p.startswith("small target") and p.endswith("Go") for p in problems)
    assert any(p.startswith("scrolls sideways") for p in problems)
