"""Issue 14 in a real browser at 360 px: a new viewer signs up on a live storefront,
buys, pays, sees the order paid in "my orders" and cancels another; a streamer adds,
edits and withdraws a listing while an open storefront follows without reloading,
then ends the session (after confirming) and sees the summary."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from shop.db import db
from shop.live.models import LiveListing
from tests.conftest import TEST_PASSWORD
from tests.pages.browser import check_accessible, settle, sign_in, skip_reason
from tests.pages.conftest import SHIPPING, make_live_session

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def test_a_streamer_fixes_listings_live_and_a_new_viewer_buys_pays_and_cancels(
    live_server, phone, screenshot, make_user, make_product
):
    streamer = make_user("streamer")
    live = make_live_session(streamer, [make_product(name="庆元香菇 Qingyuan shiitake")])
    fungus = make_product(name="白木耳 White fungus", stock=30, price_fen=3990)
    session_id, shiitake_id = live.id, live.listings[0].id
    fungus_id, streamer_email = fungus.id, streamer.email
    settle()

    shop = phone()
    shop.goto(f"/live/{session_id}")
    shop.evaluate("window.notReloaded = true")
    console = phone()
    sign_in(console, streamer_email, TEST_PASSWORD)
    console.goto(f"/studio/sessions/{session_id}")

    # Listed during the session: the open storefront shows it without a reload.
    console.select_option("#product_id", str(fungus_id))
    console.fill("#flash_price", "29.90")
    console.fill("#allotted_qty", "10")
    console.get_by_role("button", name="上架商品").click()
    expect(console.locator(".flash").first).to_contain_text("白木耳 White fungus 已上架")
    listing_id = db.session.scalar(
        select(LiveListing.id).where(LiveListing.product_id == fungus_id)
    )
    settle()
    card = shop.locator(f"#others [data-listing-id='{listing_id}']")
    expect(card).to_contain_text("¥29.90")

    # A new price reaches the storefront.
    console_card = console.locator(f"[data-listing-id='{listing_id}']")
    console_card.locator("summary").click()
    console_card.locator("input[name=flash_price]").fill("25.00")
    console_card.get_by_role("button", name="保存").click()
    expect(shop.locator(f"[data-listing-id='{listing_id}']")).to_contain_text("¥25.00")
    check_accessible(console)
    console.set_viewport_size({"width": 1280, "height": 800})
    screenshot(console, "studio-console-desk")
    console.set_viewport_size({"width": 360, "height": 740})

    # Withdrawn: it disappears from the storefront.
    console.locator(f"[data-listing-id='{listing_id}']").locator("summary").click()
    console.locator(f"[data-withdraw='{listing_id}']").click()
    expect(shop.locator(f"[data-listing-id='{listing_id}']")).to_have_count(0)
    assert shop.evaluate("window.notReloaded") is True

    # A new viewer: buy → sign in → sign up → back at the buy form.
    shop.locator(f"[data-buy-for='{shiitake_id}']").click()
    shop.locator("#signup-link").click()
    check_accessible(shop)
    shop.fill("#email", "li.ayi@example.com")
    shop.fill("#password", "shan huo 2026")
    shop.fill("#display_name", "李阿姨")
    shop.fill("#phone", "+86 139 0000 0000")
    screenshot(shop, "signup")
    shop.locator("#signup-button").click()
    expect(shop.locator("#qty")).to_be_visible()
    expect(shop.locator("#name")).to_have_value("李阿姨")
    shop.fill("#qty", "2")
    expect(shop.locator("#buy-total")).to_have_text("¥59.80")
    shop.fill("#address", SHIPPING["address"])
    shop.fill("#region", SHIPPING["region"])
    check_accessible(shop)
    shop.get_by_role("button", name="提交订单").click()
    expect(shop.locator("#countdown")).to_contain_text(":")
    shop.locator("#pay-button").click()
    expect(shop.locator("#order-state")).to_have_attribute("data-state", "paid")
    shop.goto("/orders")
    expect(shop.locator("main")).to_contain_text("已付款")
    check_accessible(shop)
    screenshot(shop, "my-orders")

    # Another order, left unpaid, then cancelled; the address is offered again.
    shop.goto(f"/live/{session_id}/buy/{shiitake_id}")
    expect(shop.locator("#address")).to_have_value(SHIPPING["address"])
    shop.get_by_role("button", name="提交订单").click()
    check_accessible(shop)
    screenshot(shop, "order-unpaid")
    shop.locator("#cancel-button").click()
    expect(shop.locator("#order-state")).to_have_attribute("data-state", "cancelled")
    expect(shop.locator("#pay-button")).to_have_count(0)

    # The end: a confirmation, then the summary.
    console.goto(f"/studio/sessions/{session_id}")
    console.locator("#end-button").click()
    expect(console.locator("#confirm-message")).to_contain_text("结束直播？")
    check_accessible(console)
    console.locator("#confirm-button").click()
    summary = console.locator("#summary")
    expect(summary).to_contain_text("庆元香菇 Qingyuan shiitake")
    expect(summary.locator(f"[data-summary-for='{shiitake_id}']")).to_contain_text("¥59.80")
    check_accessible(console)
    screenshot(console, "studio-summary")


def test_a_buyer_pays_with_the_payment_element_and_a_double_tap_shows_no_error(
    app, live_server, phone, screenshot, make_user, make_product, localstripe
):
    import requests

    from shop.orders import service as orders
    from tests.support.stripe import SECRET_KEY, WEBHOOK_SECRET

    saved = {
        key: app.config.get(key)
        for key in (
            "STRIPE_SECRET_KEY",
            "STRIPE_API_BASE",
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_PUBLISHABLE_KEY",
            "STRIPE_JS_URL",
        )
    }
    app.config.update(
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_API_BASE=localstripe.base_url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_PUBLISHABLE_KEY="pk_test_shanhuo",
        STRIPE_JS_URL=f"{localstripe.base_url}/js.stripe.com/v3/",
    )
    # localstripe sends its webhooks, signed with our secret, to the running app
    requests.post(
        f"{localstripe.base_url}/_config/webhooks/shanhuo",
        data={"url": f"{live_server.url}/api/v1/payments/stripe/webhook", "secret": WEBHOOK_SECRET},
        timeout=5,
    ).raise_for_status()
    try:
        buyer = make_user("buyer")
        live = make_live_session(make_user("streamer"), [make_product(name="香菇 Shiitake")])
        order, _ = orders.place_order(
            db.session,
            buyer_id=buyer.id,
            lines=[{"listing_id": live.listings[0].id, "qty": 2}],
            shipping=SHIPPING,
            idempotency_key="payment-element",
            payment_timeout_s=900,
        )
        db.session.commit()
        order_id, email = order.id, buyer.email
        settle()

        page = phone()
        sign_in(page, email, TEST_PASSWORD)
        page.goto(f"/orders/{order_id}")
        fields = page.locator("#payment-element input")
        expect(fields.first).to_be_visible()
        page.fill("#payment-element input[placeholder=number]", "4242424242424242")
        page.fill("#payment-element input[placeholder=exp_month]", "12")
        page.fill("#payment-element input[placeholder=exp_year]", "34")
        page.fill("#payment-element input[placeholder=cvc]", "123")
        page.fill("#payment-element input[placeholder=postal_code]", "32300")
        screenshot(page, "order-stripe")
        page.locator("#pay-button").dblclick()
        expect(page.locator("#pay-status")).to_contain_text("付款成功")
        expect(page.locator("#pay-error")).to_be_hidden()
        expect(page.locator("#order-state")).to_have_attribute("data-state", "paid")
        check_accessible(page)
    finally:
        app.config.update(saved)
