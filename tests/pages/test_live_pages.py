"""The streamer's console and the storefront through the test client: schedule, list,
start, pin, end; buy → order → sandbox payment, once per form render."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shop.catalog.models import Product
from shop.db import db
from shop.live.models import LiveListing, LiveSession
from shop.orders.models import Order
from tests.pages.conftest import csrf_token, make_live_session


def reload(model, pk):
    return db.session.get(model, pk, populate_existing=True)


def test_a_streamer_schedules_lists_starts_pins_and_ends_a_session(signed_in, make_product):
    streamer, pages = signed_in("streamer")
    product = make_product(name="白木耳 White fungus", stock=50)

    when = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=2)).replace(microsecond=0)
    response = pages.submit(
        "/studio",
        "/studio/sessions",
        {"title": "周五直播 Friday live", "scheduled_at": when.strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 302
    session_id = int(response.headers["Location"].rsplit("/", 1)[1])
    live = reload(LiveSession, session_id)
    assert live.streamer_id == streamer.id
    assert live.scheduled_at == when.replace(second=0)  # read in SHOP_TIMEZONE

    console = f"/studio/sessions/{session_id}"
    pages.submit(
        console,
        f"{console}/listings",
        {"product_id": product.id, "flash_price": "29.9", "allotted_qty": "12"},
    )
    (listing,) = reload(LiveSession, session_id).listings
    assert (listing.flash_price_fen, listing.allotted_qty, listing.per_buyer_limit) == (
        2990,
        12,
        None,
    )
    assert reload(Product, product.id).stock == 38
    html = pages.get(console).get_data(as_text=True)
    assert "白木耳 White fungus 已上架" in html
    assert f'data-remaining-for="{listing.id}">12<' in html

    asked = pages.submit(console, f"{console}/start")
    assert asked.status_code == 200
    assert "现在还没到时间" in asked.get_data(as_text=True)  # scheduled in two hours
    assert reload(LiveSession, session_id).state == "scheduled"
    pages.submit(console, f"{console}/start", {"confirm": "yes"})
    assert reload(LiveSession, session_id).state == "live"
    pages.submit(console, f"{console}/listings/{listing.id}/pin")
    assert reload(LiveSession, session_id).pinned_listing_id == listing.id
    assert "is-pinned" in pages.get(console).get_data(as_text=True)

    asked = pages.submit(console, f"{console}/end")
    assert "结束直播？" in asked.get_data(as_text=True)
    assert reload(LiveSession, session_id).state == "live"
    pages.submit(console, f"{console}/end", {"confirm": "yes"})
    assert reload(LiveSession, session_id).state == "ended"
    assert reload(Product, product.id).stock == 50  # the allotment went back
    assert "直播已结束" in pages.get(console).get_data(as_text=True)


def test_bad_listing_input_is_explained_and_changes_nothing(signed_in, make_product):
    streamer, pages = signed_in("streamer")
    product = make_product(stock=5)
    live = make_live_session(streamer, [], start=False)
    console = f"/studio/sessions/{live.id}"
    cases = [
        ({"product_id": product.id, "flash_price": "12.345", "allotted_qty": "1"}, "价格要写成"),
        ({"product_id": product.id, "flash_price": "-1", "allotted_qty": "1"}, "价格要写成"),
        ({"product_id": product.id, "flash_price": "1", "allotted_qty": "1.5"}, "要填一个整数"),
        ({"product_id": product.id, "flash_price": "1", "allotted_qty": "0"}, "allotted_qty"),
        ({"product_id": product.id, "flash_price": "1", "allotted_qty": "6"}, "只剩 5 件"),
        ({"product_id": "99999", "flash_price": "1", "allotted_qty": "1"}, "没有这个商品"),
    ]
    for form, message in cases:
        response = pages.submit(console, f"{console}/listings", {**form, "confirm": "yes"})
        assert response.status_code in (404, 409, 422)
        html = response.get_data(as_text=True)
        assert message in html, form
        # The form keeps what was typed.
        assert 'autocomplete="off" value="{}"'.format(form["flash_price"]) in html
    assert reload(LiveSession, live.id).listings == []
    assert reload(Product, product.id).stock == 5


def test_a_streamer_cannot_open_or_act_on_another_streamers_session(
    signed_in, make_user, make_product
):
    owner = make_user("streamer")
    live = make_live_session(owner, [make_product()], start=False)
    _, pages = signed_in("streamer")
    for path in [f"/studio/sessions/{live.id}", f"/studio/sessions/{live.id}/panel"]:
        response = pages.get(path)
        assert response.status_code == 403
        assert response.mimetype == "text/html"
    pages.submit("/studio", f"/studio/sessions/{live.id}/start")
    assert reload(LiveSession, live.id).state == "scheduled"
    assert f"session-{live.id}" not in pages.get("/studio").get_data(as_text=True)


def test_the_console_offers_and_lists_only_own_and_house_products(
    signed_in, make_user, make_product
):
    streamer, pages = signed_in("streamer")
    mine = make_product(name="我的香菇 Mine", owner_id=streamer.id, stock=5)
    house = make_product(name="公共木耳 House", stock=5)
    theirs = make_product(name="别人的柚子 Theirs", owner_id=make_user("streamer").id, stock=5)
    live = make_live_session(streamer, [], start=False)
    console = f"/studio/sessions/{live.id}"
    html = pages.get(console).get_data(as_text=True)
    assert f'<option value="{mine.id}">' in html
    assert f'<option value="{house.id}">' in html
    assert f'<option value="{theirs.id}">' not in html

    form = {"product_id": theirs.id, "flash_price": "1", "allotted_qty": "1"}
    refused = pages.submit(console, f"{console}/listings", form)
    assert refused.status_code == 403
    assert "属于别的主播" in refused.get_data(as_text=True)
    assert reload(LiveSession, live.id).listings == []
    assert reload(Product, theirs.id).stock == 5
    for product in (mine, house):
        form = {"product_id": product.id, "flash_price": "1", "allotted_qty": "1", "confirm": "yes"}
        pages.submit(console, f"{console}/listings", form)
    listed = {listing.product_id for listing in reload(LiveSession, live.id).listings}
    assert listed == {mine.id, house.id}


def test_the_storefront_is_public_with_the_pinned_product_first(pages, make_user, make_product):
    streamer = make_user("streamer")
    shiitake = make_product(name="香菇 Shiitake")
    fungus = make_product(name="银耳 White fungus")
    live = make_live_session(streamer, [shiitake, fungus])
    from shop.live import service

    second = live.listings[1]
    service.pin_listing(db.session, live.id, second.id, streamer_id=streamer.id)
    db.session.commit()

    html = pages.get(f"/live/{live.id}").get_data(as_text=True)
    pinned = html.split('id="pinned"', 1)[1].split('id="others"', 1)[0]
    assert "银耳 White fungus" in pinned and "香菇 Shiitake" not in pinned
    assert "¥29.90" in html
    assert f'data-remaining-for="{second.id}">10<' in html
    assert f'href="/live/{live.id}/buy/{second.id}"' in html
    assert "/pages/assets/live.js" in html


def test_a_buyer_orders_and_pays_in_the_sandbox_and_a_double_submit_orders_once(
    signed_in, make_user, make_product
):
    live = make_live_session(make_user("streamer"), [make_product(name="香菇 Shiitake")])
    listing = live.listings[0]
    buyer, pages = signed_in("buyer")
    buy = f"/live/{live.id}/buy/{listing.id}"

    form_html = pages.get(buy).get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form_html).group(1)
    data = {
        "csrf_token": csrf_token(form_html),
        "idempotency_key": key,
        "qty": "2",
        "name": "王女士",
        "phone": "+86 138 0000 0000",
        "address": "庆元县 松源街道 1 号",
        "region": "浙江 Zhejiang",
    }
    first = pages.client.post(buy, data=data)
    again = pages.client.post(buy, data=data)  # the same form sent twice
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    order_id = int(first.headers["Location"].rsplit("/", 1)[1])
    assert db.session.query(Order).filter_by(buyer_id=buyer.id).count() == 1
    assert reload(LiveListing, listing.id).remaining == 8

    order_page = pages.get(f"/live/orders/{order_id}").get_data(as_text=True)
    assert "¥59.80" in order_page and "待付款" in order_page
    pages.submit(f"/live/orders/{order_id}", f"/live/orders/{order_id}/pay")
    order_page = pages.get(f"/live/orders/{order_id}").get_data(as_text=True)
    assert "付款成功" in order_page
    assert reload(Order, order_id).state == "paid"


def test_buying_needs_a_signed_in_buyer(pages, signed_in, make_user, make_product):
    live = make_live_session(make_user("streamer"), [make_product()])
    buy = f"/live/{live.id}/buy/{live.listings[0].id}"
    response = pages.get(buy)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    _, streamer_pages = signed_in("streamer")
    assert streamer_pages.get(buy).status_code == 403


def test_a_refused_order_keeps_the_form_and_says_why(signed_in, make_user, make_product):
    live = make_live_session(make_user("streamer"), [make_product()])
    listing = live.listings[0]
    _, pages = signed_in("buyer")
    buy = f"/live/{live.id}/buy/{listing.id}"

    def send(**changes):
        form_html = pages.get(buy).get_data(as_text=True)
        data = {
            "csrf_token": csrf_token(form_html),
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', form_html)[1],
            "qty": "1",
            "name": "王女士",
            "phone": "+86 138 0000 0000",
            "address": "庆元县 1 号",
            "region": "浙江",
            **changes,
        }
        return pages.client.post(buy, data=data)

    over_limit = send(qty="6")  # per-buyer limit 5
    assert over_limit.status_code == 409
    assert 'value="庆元县 1 号"' in over_limit.get_data(as_text=True)
    bad_phone = send(phone="call me")
    assert bad_phone.status_code == 422
    assert re.search(r'class="flash error"[^>]*>phone: ', bad_phone.get_data(as_text=True))
    assert send(qty="abc").status_code == 422
    assert reload(LiveListing, listing.id).remaining == 10


def test_someone_elses_order_page_is_a_404(signed_in, make_user, make_product):
    live = make_live_session(make_user("streamer"), [make_product()])
    from shop.orders import service as orders
    from tests.pages.conftest import SHIPPING

    order, _ = orders.place_order(
        db.session,
        buyer_id=make_user("buyer").id,
        lines=[{"listing_id": live.listings[0].id, "qty": 1}],
        shipping=SHIPPING,
        idempotency_key="someone-else",
        payment_timeout_s=900,
    )
    db.session.commit()
    _, pages = signed_in("buyer")
    response = pages.get(f"/live/orders/{order.id}")
    assert response.status_code == 404 and response.mimetype == "text/html"
    pages.submit("/", f"/live/orders/{order.id}/pay")
    assert reload(Order, order.id).state == "pending_payment"


def test_the_console_panel_shows_orders_and_stats(signed_in, make_user, make_product):
    streamer, pages = signed_in("streamer")
    live = make_live_session(streamer, [make_product()])
    from shop.orders import service as orders
    from tests.pages.conftest import SHIPPING

    orders.place_order(
        db.session,
        buyer_id=make_user("buyer").id,
        lines=[{"listing_id": live.listings[0].id, "qty": 3}],
        shipping=SHIPPING,
        idempotency_key="panel",
        payment_timeout_s=900,
    )
    db.session.commit()
    panel = pages.get(f"/studio/sessions/{live.id}/panel").get_data(as_text=True)
    assert 'data-stat="orders">1<' in panel
    assert "3 × · ¥89.70 · 待付款" in panel
    assert "王女士" not in panel  # no personal data on the console


def test_a_flash_price_under_half_the_list_price_asks_first(signed_in, make_product):
    streamer, pages = signed_in("streamer")
    product = make_product(name="香菇 Shiitake", stock=50, price_fen=5900)
    live = make_live_session(streamer, [], start=False)
    console = f"/studio/sessions/{live.id}"
    form = {"product_id": str(product.id), "flash_price": "0.01", "allotted_qty": "5"}
    asked = pages.submit(console, f"{console}/listings", form)
    html = asked.get_data(as_text=True)
    assert asked.status_code == 200 and "不到原价 ¥59.00 的一半" in html
    assert 'name="flash_price" value="0.01"' in html  # the confirm step carries the form
    assert reload(LiveSession, live.id).listings == []
    pages.submit(console, f"{console}/listings", {**form, "confirm": "yes"})
    (listing,) = reload(LiveSession, live.id).listings
    assert listing.flash_price_fen == 1

    # Editing: a fair price needs no confirmation; a cheap one does.
    edit = f"{console}/listings/{listing.id}/edit"
    pages.submit(console, edit, {"flash_price": "39.9", "allotted_qty": "8"})
    listing = reload(LiveListing, listing.id)
    assert (listing.flash_price_fen, listing.allotted_qty) == (3990, 8)
    assert reload(Product, product.id).stock == 42
    asked = pages.submit(console, edit, {"flash_price": "1", "allotted_qty": "8"})
    assert "不到原价" in asked.get_data(as_text=True)
    assert reload(LiveListing, listing.id).flash_price_fen == 3990


def test_a_streamer_withdraws_a_listing_and_sees_the_summary_after_the_end(
    signed_in, make_user, make_product
):
    streamer, pages = signed_in("streamer")
    shiitake = make_product(name="香菇 Shiitake", stock=20, price_fen=3990)
    fungus = make_product(name="银耳 White fungus", stock=20, price_fen=3990)
    live = make_live_session(streamer, [shiitake, fungus])
    first, second = live.listings
    buyer = make_user("buyer")
    from shop.orders import service as orders
    from tests.shop.conftest import SHIPPING

    order, _ = orders.place_order(
        db.session,
        buyer_id=buyer.id,
        lines=[{"listing_id": first.id, "qty": 3}],
        shipping=SHIPPING,
        idempotency_key="summary-1",
        payment_timeout_s=900,
    )
    orders.mark_paid(db.session, order.id)
    db.session.commit()
    console = f"/studio/sessions/{live.id}"
    pages.submit(console, f"{console}/listings/{second.id}/withdraw")
    assert reload(Product, fungus.id).stock == 20
    html = pages.get(console).get_data(as_text=True)
    assert "银耳 White fungus 已下架" in html
    assert f'data-remaining-for="{second.id}"' not in html
    storefront = pages.get(f"/live/{live.id}").get_data(as_text=True)
    assert f'data-listing-id="{second.id}"' not in storefront

    pages.submit(console, f"{console}/end", {"confirm": "yes"})
    html = pages.get(console).get_data(as_text=True)
    summary = html.split('id="summary"', 1)[1]
    row = summary.split(f'data-summary-for="{first.id}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>3</td><td>7</td><td>¥89.70</td>" in row.replace("\n", "").replace("  ", "")
    assert "剩余" not in summary.split("</section>", 1)[0]


def test_listing_cards_are_served_for_live_updates(signed_in, pages, make_user, make_product):
    streamer, console_pages = signed_in("streamer")
    product = make_product(name="香菇 Shiitake")
    live = make_live_session(streamer, [product])
    (listing,) = live.listings
    card = pages.get(f"/live/{live.id}/listings/{listing.id}/card")
    assert card.status_code == 200 and "香菇 Shiitake" in card.get_data(as_text=True)
    own = console_pages.get(f"/studio/sessions/{live.id}/listings/{listing.id}/card")
    assert own.status_code == 200 and "data-withdraw" in own.get_data(as_text=True)
    from shop.live import service

    service.withdraw_listing(db.session, live.id, listing.id, streamer_id=streamer.id)
    db.session.commit()
    assert pages.get(f"/live/{live.id}/listings/{listing.id}/card").status_code == 204
