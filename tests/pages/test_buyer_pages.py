"""A buyer on the pages: sign up and come back to the listing, my orders, one order
(countdown, cancel, expired, tracking), and a buy form that shows the total and is
offered only while the listing can sell."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from shop.accounts.models import User
from shop.db import db, utcnow
from shop.live import service as live_service
from shop.orders import service as orders
from shop.orders.models import Order
from tests.pages.conftest import make_live_session
from tests.shop.conftest import SHIPPING


def place(buyer, listing_id, qty=1, key="k"):
    order, _ = orders.place_order(
        db.session,
        buyer_id=buyer.id,
        lines=[{"listing_id": listing_id, "qty": qty}],
        shipping=SHIPPING,
        idempotency_key=key,
        payment_timeout_s=900,
    )
    db.session.commit()
    return order


def test_a_new_viewer_signs_up_and_returns_to_the_listing(pages, make_user, make_product):
    live = make_live_session(make_user("streamer"), [make_product(name="香菇 Shiitake")])
    buy_path = f"/live/{live.id}/buy/{live.listings[0].id}"
    login = pages.get(buy_path)
    assert login.status_code == 302 and "/login?next=" in login.headers["Location"]
    login_page = pages.get(login.headers["Location"]).get_data(as_text=True)
    assert "/signup?next=" in login_page and "buy" in login_page.split("/signup?next=")[1][:40]

    signup = f"/signup?next={buy_path}"
    form = {
        "email": "new.viewer@example.com",
        "password": "correct horse battery",
        "display_name": "李阿姨",
        "phone": "+86 139 0000 0000",
    }
    done = pages.submit(signup, signup, form)
    assert done.status_code == 302 and done.headers["Location"] == buy_path
    user = db.session.scalars(select(User).where(User.email == "new.viewer@example.com")).one()
    assert user.roles == ["buyer"] and user.phone == "+86 139 0000 0000"
    # Signed in: the buy form, with name and phone offered for delivery.
    html = pages.get(buy_path).get_data(as_text=True)
    assert 'value="李阿姨"' in html and 'value="+86 139 0000 0000"' in html


def test_sign_up_refusals_are_explained_and_keep_what_was_typed(pages, make_user):
    taken = make_user("buyer")
    cases = [
        (
            {"email": "not-an-email", "password": "long enough pw", "display_name": "A"},
            "有效的邮箱",
        ),
        ({"email": "a@example.com", "password": "short", "display_name": "A"}, "至少要 8 个字符"),
        ({"email": "b@example.com", "password": "long enough pw", "display_name": ""}, "你的称呼"),
        (
            {
                "email": "c@example.com",
                "password": "long enough pw",
                "display_name": "A",
                "phone": "x",
            },
            "手机号只能有数字",
        ),
        ({"email": taken.email, "password": "long enough pw", "display_name": "A"}, "已经注册过了"),
    ]
    for form, message in cases:
        response = pages.submit("/signup", "/signup", form)
        assert response.status_code in (409, 422), form
        html = response.get_data(as_text=True)
        assert message in html, form
        assert 'value="{}"'.format(form["email"]) in html
    assert db.session.scalars(select(User).where(User.email.like("_@example.com"))).all() == []


def test_sign_up_never_sends_anyone_off_site(pages):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        form = {
            "email": f"x{len(target)}@example.com",
            "password": "long enough pw",
            "display_name": "X",
        }
        response = pages.submit("/signup", f"/signup?next={target}", form)
        assert response.status_code == 302
        assert response.headers["Location"] == "/"
        pages.submit("/", "/logout")


def test_sign_up_is_rate_limited_like_registration(app, pages, monkeypatch):
    monkeypatch.setitem(app.config, "REGISTER_RATE_LIMIT", 1)
    form = {"email": "first@example.com", "password": "long enough pw", "display_name": "A"}
    address = {"REMOTE_ADDR": "198.51.100.7"}  # an address no other test signed up from

    def sign_up(data):
        body = {"csrf_token": pages.token("/signup"), **data}
        return pages.client.post("/signup", data=body, environ_base=address)

    assert sign_up(form).status_code == 302
    pages.submit("/", "/logout")
    second = sign_up({**form, "email": "second@example.com"})
    assert second.status_code == 429
    assert "注册太频繁" in second.get_data(as_text=True)


def test_my_orders_show_state_total_and_lines_and_cancel_works(signed_in, make_user, make_product):
    buyer, pages = signed_in("buyer")
    live = make_live_session(make_user("streamer"), [make_product(name="香菇 Shiitake")])
    listing_id = live.listings[0].id
    first = place(buyer, listing_id, 2, key="a")
    second = place(buyer, listing_id, 1, key="b")
    pages.submit(f"/orders/{second.id}", f"/orders/{second.id}/pay")  # the sandbox
    # A second tap after it went through: no error, still paid.
    again = pages.submit(f"/orders/{second.id}", f"/orders/{second.id}/pay")
    assert "出错" not in pages.get(again.headers["Location"]).get_data(as_text=True)
    html = pages.get("/orders").get_data(as_text=True)
    assert "待付款" in html and "已付款" in html and "¥59.80" in html and "香菇 Shiitake" in html

    page = pages.get(f"/orders/{first.id}").get_data(as_text=True)
    assert 'id="countdown"' in page and 'id="pay-button"' in page and 'id="cancel-button"' in page
    pages.submit(f"/orders/{first.id}", f"/orders/{first.id}/cancel")
    assert db.session.get(Order, first.id, populate_existing=True).state == "cancelled"
    page = pages.get(f"/orders/{first.id}").get_data(as_text=True)
    assert "订单已取消" in page and 'id="cancel-button"' not in page
    assert db.session.get(type(live.listings[0]), listing_id, populate_existing=True).remaining == 9

    # Paid, not yet packed: cancelling refunds it.
    pages.submit(f"/orders/{second.id}", f"/orders/{second.id}/cancel")
    assert db.session.get(Order, second.id, populate_existing=True).state == "refunded"


def test_another_buyers_order_is_not_found(signed_in, make_user, make_product):
    _, pages = signed_in("buyer")
    live = make_live_session(make_user("streamer"), [make_product()])
    theirs = place(make_user("buyer"), live.listings[0].id)
    assert pages.get(f"/orders/{theirs.id}").status_code == 404
    pages.submit("/orders", f"/orders/{theirs.id}/cancel")
    assert db.session.get(Order, theirs.id, populate_existing=True).state == "pending_payment"


def test_an_order_past_its_deadline_says_so_and_offers_to_buy_again(
    signed_in, make_user, make_product
):
    buyer, pages = signed_in("buyer")
    live = make_live_session(make_user("streamer"), [make_product()])
    order = place(buyer, live.listings[0].id)
    db.session.execute(
        update(Order).where(Order.id == order.id).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    page = pages.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "已过期" in page and "超过付款时间" in page and "再买一次" in page
    assert 'id="pay-button"' not in page and 'id="cancel-button"' not in page


def test_a_shipped_order_shows_its_tracking(signed_in, make_user, make_product):
    buyer, pages = signed_in("buyer")
    live = make_live_session(make_user("streamer"), [make_product()])
    order = place(buyer, live.listings[0].id)
    db.session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(state="shipped", carrier="顺丰 SF", tracking_no="SF1234567890")
    )
    db.session.commit()
    page = pages.get(f"/orders/{order.id}").get_data(as_text=True)
    assert "顺丰 SF SF1234567890" in page and "已发货" in page
    assert 'id="cancel-button"' not in page


def test_the_buy_form_offers_the_last_address_and_shows_the_total(
    signed_in, make_user, make_product
):
    buyer, pages = signed_in("buyer")
    live = make_live_session(make_user("streamer"), [make_product()])
    listing_id = live.listings[0].id
    place(buyer, listing_id)
    html = pages.get(f"/live/{live.id}/buy/{listing_id}").get_data(as_text=True)
    assert f'value="{SHIPPING["address"]}"' in html
    assert 'id="buy-total"' in html and "¥29.90" in html


def test_the_buy_form_is_not_offered_when_sold_out_or_not_live(signed_in, make_user, make_product):
    _, pages = signed_in("buyer")
    streamer = make_user("streamer")
    live = make_live_session(streamer, [make_product(), make_product()])
    sold, other = (listing.id for listing in live.listings)
    place(make_user("buyer"), sold, qty=5, key="x")
    place(make_user("buyer"), sold, qty=5, key="y")
    response = pages.get(f"/live/{live.id}/buy/{sold}")
    assert response.status_code == 409
    assert "已经卖完了" in response.get_data(as_text=True)
    assert 'name="qty"' not in response.get_data(as_text=True)
    live_service.end_session(db.session, live.id, streamer_id=streamer.id)
    db.session.commit()
    response = pages.get(f"/live/{live.id}/buy/{other}")
    assert response.status_code == 409 and "直播没在进行" in response.get_data(as_text=True)
    refused = pages.submit(f"/live/{live.id}", f"/live/{live.id}/buy/{other}", {"qty": "1"})
    assert refused.status_code == 409


def test_with_stripe_the_order_page_mounts_the_payment_element(
    app, signed_in, make_user, make_product, localstripe
):
    from tests.support.stripe import SECRET_KEY

    buyer, pages = signed_in("buyer")
    live = make_live_session(make_user("streamer"), [make_product()])
    order = place(buyer, live.listings[0].id)
    saved = {k: app.config.get(k) for k in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE")}
    saved["STRIPE_PUBLISHABLE_KEY"] = app.config.get("STRIPE_PUBLISHABLE_KEY")
    saved["STRIPE_JS_URL"] = app.config.get("STRIPE_JS_URL")
    app.config.update(
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_API_BASE=localstripe.base_url,
        STRIPE_PUBLISHABLE_KEY="pk_test_shanhuo",
        STRIPE_JS_URL=f"{localstripe.base_url}/js.stripe.com/v3/",
    )
    try:
        page = pages.get(f"/orders/{order.id}")
        html = page.get_data(as_text=True)
        assert f'<script src="{localstripe.base_url}/js.stripe.com/v3/"></script>' in html
        assert 'data-key="pk_test_shanhuo"' in html and 'id="payment-element"' in html
        assert localstripe.base_url in page.headers["Content-Security-Policy"]
        started = pages.client.post(
            f"/orders/{order.id}/payment",
            headers={"X-CSRFToken": pages.token(f"/orders/{order.id}")},
        )
        assert started.status_code == 200
        secret = started.get_json()["client_secret"]
        assert secret.startswith("pi_") and "_secret_" in secret
        # Asked again (a reload, a double tap): the same PaymentIntent.
        again = pages.client.post(
            f"/orders/{order.id}/payment",
            headers={"X-CSRFToken": pages.token(f"/orders/{order.id}")},
        )
        assert again.get_json()["client_secret"] == secret
    finally:
        app.config.update(saved)
