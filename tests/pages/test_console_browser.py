"""The console, the villager's lease and slip, and the farmer's reconciliation in a real
browser (Debian's headless Chromium): the console at a desktop's 1280 px, the villager's
and farmer's pages at a phone's 360 px. Every new page passes the accessibility check.
Flows are grouped so the suite stays quick."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from contracts import service as contracts
from contracts.payouts import service as payouts
from contracts.tasks import sending_lease
from fulfillment import service as fulfillment
from shop.db import db, utcnow
from tests.conftest import TEST_PASSWORD
from tests.pages.browser import check_accessible, settle, sign_in, skip_reason
from tests.pages.conftest import SHIPPING, make_farmer_statement, make_paid_order

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

DESKTOP = {"width": 1280, "height": 900}


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def desktop(browser: Any, live_server: Any) -> Any:
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context(viewport=DESKTOP, locale="zh-CN", base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def test_the_console_runs_workshops_prices_weighing_and_payouts(
    desktop, phone, screenshot, make_user, make_product
):
    admin = make_user("admin")
    villager = make_user("villager")
    farmer = make_user("farmer")
    product = make_product(sku="QG-SHIITAKE-FRESH", name="庆元鲜香菇 fresh shiitake")
    world = make_farmer_statement(farmer, product)
    delivered_on = world["deliveries"][1].delivered_on.isoformat()
    contract_id = world["contract"].id
    admin_email, farmer_email = admin.email, farmer.email
    villager_id, villager_name = villager.id, villager.display_name
    settle()

    page = desktop()
    sign_in(page, admin_email, TEST_PASSWORD)
    assert page.url.endswith("/admin")
    expect(page.locator("#packing-queue")).to_be_visible()
    check_accessible(page)
    screenshot(page, "console")

    # a workshop, and a villager in it
    page.goto("/admin/workshops")
    check_accessible(page)
    page.fill("#workshop-name", "爱玲之家 Ailing")
    page.fill("#workshop-village", "松源街道 Songyuan")
    page.get_by_role("button", name="创建").click()
    expect(page.locator("h1")).to_contain_text("爱玲之家 Ailing")
    page.select_option("#member-user", value=str(villager_id))
    page.locator("#members form button[type=submit]").last.click()
    expect(page.locator("#members")).to_contain_text(villager_name)
    check_accessible(page)

    # a CSV with a bad line: shown in place, nothing imported
    page.goto("/admin/prices")
    check_accessible(page)
    page.fill(
        "#csv-text",
        "product_sku,grade,price_fen_per_kg,effective_on,source\n"
        f"QG-SHIITAKE-FRESH,premium,2100,{delivered_on},庆元香菇市场\n"
        f"NO-SUCH-SKU,standard,1800,{delivered_on},庆元香菇市场\n",
    )
    page.locator("#import-button").click()
    bad = page.locator("[data-bad-line='3']")
    expect(bad).to_contain_text("NO-SUCH-SKU")
    expect(bad).to_contain_text("没有货号为")
    expect(page.locator("[data-bad-line='2']")).to_have_count(0)
    expect(page.locator("#csv-text")).to_have_value(re.compile("NO-SUCH-SKU"))
    check_accessible(page)

    # the weighing station: the price before saving, then saved
    page.goto("/admin/weighing")
    check_accessible(page)
    page.select_option("#w-contract", value=str(contract_id))
    page.fill("#w-weight", "86.75")
    page.fill("#w-date", delivered_on)
    page.locator("#check-price").click()
    expect(page.locator("#computation")).to_have_text("86.75 kg × ¥17.45 × 1.12 = ¥1,695.44")
    check_accessible(page)
    page.locator("#save-delivery").click()
    expect(page.get_by_role("status")).to_contain_text("¥1,695.44")

    farmer_page = phone()
    sign_in(farmer_page, farmer_email, TEST_PASSWORD)
    lines = farmer_page.locator("[data-field=computation]")
    expect(lines.first).to_have_text("86.75 kg × ¥17.45 × 1.12 = ¥1,695.44")
    expect(lines).to_have_count(3)

    # payouts through today: the new payout lists what it pays
    page.goto("/admin/payouts")
    check_accessible(page)
    page.locator("#run-payouts").click()
    expect(page.get_by_role("status")).to_contain_text("结算完成：2 笔付款")  # new + still owed
    newest = page.locator("article.payout").first
    expect(newest.locator("[data-item-fen]")).to_have_count(2)
    expect(newest.locator("[data-field=amount]")).to_have_text("¥3,390.88")

    for path in ("/admin/users", "/admin/contracts"):
        page.goto(path)
        check_accessible(page)


def test_a_villager_is_warned_keeps_the_task_checks_the_weight_and_prints_the_slip(
    app, phone, screenshot, make_user, make_product
):
    villager = make_user("villager")
    workshop = fulfillment.create_workshop(
        db.session, name="香信谷共富工坊 Xiangxingu", village="竹口"
    )
    fulfillment.add_member(db.session, workshop.id, user_id=villager.id, lead=True)
    db.session.commit()
    product = make_product(
        name="庆元香菇 Qingyuan shiitake", unit_weight_g=500, packing_rate_fen=65
    )
    order_id = make_paid_order(make_user("buyer"), product, qty=2)
    make_paid_order(make_user("buyer"), product, qty=1)  # one more waiting
    email = villager.email
    settle()
    saved = app.config["CLAIM_LEASE_S"]
    app.config["CLAIM_LEASE_S"] = 303  # the warning (at 300 s left) comes 3 s after claiming
    try:
        page = phone()
        sign_in(page, email, TEST_PASSWORD)
        expect(page.locator("#waiting")).to_have_attribute("data-waiting", "2")
        page.get_by_role("button", name="领取下一个任务").click()
        expect(page.locator("#waiting")).to_have_attribute("data-waiting", "1")
        warning = page.locator("#lease-warning")
        expect(warning).to_be_hidden()
        expect(warning).to_be_visible(timeout=10_000)
        expect(warning).to_contain_text("快到时间了")
        check_accessible(page)
        screenshot(page, "workshop-lease-warning")
        page.locator("#keep-task").click()
        expect(page.get_by_role("status")).to_contain_text("已延长")
        expect(page.locator("#keep-task")).to_have_count(0)  # once per claim

        # the printable slip
        page.locator("#slip-link").click()
        expect(page.locator("#slip-name")).to_have_text(SHIPPING["name"])
        expect(page.locator("#slip-phone")).to_have_text(SHIPPING["phone"])
        expect(page.locator("#slip-address")).to_have_text(SHIPPING["address"])
        expect(page.locator("#slip-region")).to_have_text(SHIPPING["region"])
        expect(page.locator("#slip-numbers")).to_contain_text(f"订单 #{order_id}")
        expect(page.locator("#slip-workshop")).to_have_text("香信谷共富工坊 Xiangxingu")
        expect(page.locator("#slip-lines")).to_contain_text("2 × 庆元香菇 Qingyuan shiitake")
        expect(page.locator("#slip-qr path")).to_have_count(1)
        expect(page.locator("#print-button")).to_be_visible()
        check_accessible(page)
        page.emulate_media(media="print")
        expect(page.locator("#print-button")).to_be_hidden()
        expect(page.locator("header.top")).to_be_hidden()
        slip_mm = page.evaluate(
            "(() => { const r = document.getElementById('slip').getBoundingClientRect();"
            " return [r.width * 25.4 / 96, r.height * 25.4 / 96]; })()"
        )
        assert [round(v) for v in slip_mm] == [100, 150]
        page.emulate_media(media="screen")
        page.go_back()

        # a weight far off: asked to check before completing
        page.locator("[name=packed_weight_g]").fill("5000")
        page.get_by_role("button", name="打包好了").click()
        expect(page.locator("#weight-check")).to_contain_text("5 kg")
        expect(page.locator("#earned-today")).to_have_text("¥0.00")
        check_accessible(page)
        page.locator("#weight-confirm").click()
        expect(page.locator("#earned-today")).to_have_text("¥1.30")
        expect(page.locator("#today-parcels")).to_contain_text("¥1.30")

        # the lead's page
        page.goto("/workshop/lead")
        expect(page.locator("#queue")).to_contain_text("1")
        check_accessible(page)
    finally:
        app.config["CLAIM_LEASE_S"] = saved


def test_every_payout_on_the_farmers_page_adds_up_to_its_items(
    phone, screenshot, make_user, make_product
):
    farmer = make_user("farmer")
    product = make_product(name="庆元鲜香菇 fresh shiitake")
    world = make_farmer_statement(farmer, product)
    first, second = world["deliveries"]
    contracts.record_adjustment(
        db.session,
        world["contract"].id,
        amount_fen=-5000,
        reason="交货有 3 kg 烂菇",
        adjusted_on=second.delivered_on,
        delivery_id=second.id,
        created_by=None,
    )
    db.session.commit()
    payouts.run_payouts(
        db.session, through=utcnow().date(), now=utcnow(), sending_lease=sending_lease()
    )
    today = utcnow().date()
    draft = contracts.create_contract(
        db.session,
        farmer_id=farmer.id,
        product_id=product.id,
        premium_bp=1150,
        committed_kg=500,
        starts_on=today,
        ends_on=today + timedelta(days=60),
        created_by=None,
    )
    db.session.commit()
    email, draft_id, first_id, second_id = farmer.email, draft.id, first.id, second.id
    settle()

    page = phone()
    sign_in(page, email, TEST_PASSWORD)
    cards = page.locator("article.payout")
    expect(cards).to_have_count(2)
    for index in range(cards.count()):
        card = cards.nth(index)
        items = [
            int(v)
            for v in card.locator("[data-item-fen]").evaluate_all(
                "els => els.map(e => e.dataset.itemFen)"
            )
        ]
        assert items and sum(items) == int(card.get_attribute("data-amount-fen"))
    adjustment = page.locator("article.adjustment")
    expect(adjustment).to_contain_text("交货有 3 kg 烂菇")
    expect(adjustment.locator("[data-field=delivery]")).to_have_text(f"#{second_id}")
    expect(page.locator(f"#delivery-{first_id} [data-field=payout] a")).to_be_visible()
    expect(page.locator(f"#delivery-{second_id} [data-field=computation]")).to_have_text(
        "86.75 kg × ¥17.45 × 1.12 = ¥1,695.44"
    )
    expect(page.locator("[data-field=grade]").first).to_contain_text("标准")
    check_accessible(page)
    screenshot(page, "farmer-reconciled")

    page.locator(f"#contract-{draft_id} a.btn").click()
    expect(page.locator("#contract-terms")).to_contain_text("500 kg")
    expect(page.locator("#contract-terms")).to_contain_text("11.5%")
    check_accessible(page)
    page.locator("#confirm-accept").click()
    expect(page.get_by_role("status")).to_contain_text(f"合同 #{draft_id} 已接受")
