"""The operator's console through the test client: only admins get in, every form needs
its CSRF token, and each form reaches the service — users deactivated for good,
deliveries priced before they are saved, a CSV's bad lines shown, payouts retried,
dead events sent again, workshop reports downloaded."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from contracts import service as contracts
from contracts.models import Contract, Delivery, MarketPrice, Payout
from contracts.payouts import service as payouts
from contracts.tasks import sending_lease
from fulfillment import service as fulfillment
from fulfillment.models import WorkshopMember
from shop.accounts.models import User
from shop.core.models import OutboxEvent
from shop.db import db, utcnow
from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import Pages, make_farmer_statement

CONSOLE_PAGES = [
    "/admin",
    "/admin/workshops",
    "/admin/users",
    "/admin/contracts",
    "/admin/weighing",
    "/admin/prices",
    "/admin/payouts",
]


@pytest.mark.parametrize("role", ["villager", "farmer", "streamer", "buyer"])
def test_only_admins_open_the_console(signed_in, role):
    _, pages = signed_in(role)
    for path in CONSOLE_PAGES:
        response = pages.get(path)
        assert response.status_code == 403, path
        assert response.mimetype == "text/html"


def test_an_admin_lands_on_the_console_and_every_page_opens(signed_in, make_user, make_product):
    _, pages = signed_in("admin")
    make_farmer_statement(make_user("farmer"), make_product())
    assert pages.get("/").headers["Location"] == "/admin"
    for path in CONSOLE_PAGES:
        response = pages.get(path)
        assert response.status_code == 200, path
        assert "运营后台" in response.get_data(as_text=True) or path != "/admin"


def test_console_forms_without_a_csrf_token_are_refused(signed_in):
    _, pages = signed_in("admin")
    before = db.session.scalar(select(func.count()).select_from(User))
    response = pages.client.post(
        "/admin/users",
        data={"email": "x@y.z", "password": "12345678", "display_name": "x", "roles": "buyer"},
    )
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(User)) == before


# ---------------------------------------------------------------------------- users


def test_an_admin_creates_a_user_with_roles_and_changes_them(signed_in):
    _, pages = signed_in("admin")
    response = pages.submit(
        "/admin/users",
        "/admin/users",
        {
            "email": "aling@shanhuo.test",
            "password": "correct horse",
            "display_name": "爱玲",
            "roles": ["villager", "buyer"],
        },
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "aling@shanhuo.test"))
    assert user.roles == ["buyer", "villager"]

    pages.submit("/admin/users", f"/admin/users/{user.id}/roles", {"roles": ["villager"]})
    db.session.expire_all()
    assert db.session.get(User, user.id).roles == ["villager"]

    pages.submit("/admin/users", f"/admin/users/{user.id}/roles", {"roles": ["wizard"]})
    db.session.expire_all()
    assert db.session.get(User, user.id).roles == ["villager"]  # refused, unchanged


def test_a_deactivated_users_token_and_cookie_stop_working_and_they_cannot_sign_in(
    app, signed_in, make_user, token_for
):
    farmer = make_user("farmer")
    token = token_for(farmer)
    bearer = {"Authorization": f"Bearer {token}"}
    farmer_pages = Pages(app.test_client())
    assert farmer_pages.login(farmer).status_code == 302
    assert farmer_pages.get("/farmer").status_code == 200
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 200

    _, admin = signed_in("admin")
    response = admin.submit("/admin/users", f"/admin/users/{farmer.id}/deactivate")
    assert response.status_code == 302

    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 401
    assert farmer_pages.get("/farmer").headers["Location"].startswith("/login")
    assert Pages(app.test_client()).login(farmer).status_code == 200  # the form again
    refused = app.test_client().post(
        "/api/v1/auth/token", json={"email": farmer.email, "password": TEST_PASSWORD}
    )
    assert refused.status_code == 401
    db.session.expire_all()
    assert db.session.get(User, farmer.id).active is False


def test_an_admin_cannot_deactivate_themselves_or_drop_their_own_admin_role(signed_in):
    me, pages = signed_in("admin")
    pages.submit("/admin/users", f"/admin/users/{me.id}/deactivate")
    pages.submit("/admin/users", f"/admin/users/{me.id}/roles", {"roles": ["buyer"]})
    db.session.expire_all()
    user = db.session.get(User, me.id)
    assert user.active is True and user.roles == ["admin"]
    assert pages.get("/admin").status_code == 200


# ---------------------------------------------------------------------------- workshops


def test_an_admin_creates_a_workshop_adds_a_villager_marks_the_lead_and_removes_them(
    signed_in, make_user
):
    _, pages = signed_in("admin")
    villager = make_user("villager")
    response = pages.submit(
        "/admin/workshops", "/admin/workshops", {"name": "爱玲之家", "village": "松源街道"}
    )
    workshop_path = response.headers["Location"]
    workshop_id = int(workshop_path.rsplit("/", 1)[1])
    assert villager.display_name in pages.get(workshop_path).get_data(as_text=True)

    pages.submit(workshop_path, f"{workshop_path}/members", {"user_id": villager.id})
    member = db.session.get(WorkshopMember, (workshop_id, villager.id))
    assert member is not None and member.lead is False

    pages.submit(workshop_path, f"{workshop_path}/members/{villager.id}/lead", {"lead": "1"})
    db.session.expire_all()
    assert db.session.get(WorkshopMember, (workshop_id, villager.id)).lead is True

    pages.submit(workshop_path, f"{workshop_path}/members/{villager.id}/remove")
    db.session.expire_all()
    assert db.session.get(WorkshopMember, (workshop_id, villager.id)) is None

    pages.submit(workshop_path, f"{workshop_path}/deactivate")
    db.session.expire_all()
    assert fulfillment.get_workshop(db.session, workshop_id).active is False


def test_the_workshop_report_downloads_as_csv(signed_in, make_user):
    _, pages = signed_in("admin")
    villager = make_user("villager")
    workshop = fulfillment.create_workshop(db.session, name="洋墩", village="洋墩")
    fulfillment.add_member(db.session, workshop.id, user_id=villager.id, lead=False)
    db.session.commit()
    month = utcnow().strftime("%Y-%m")
    response = pages.get(f"/admin/workshops/{workshop.id}/report.csv?month={month}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["user_id", "name", "parcels", "earnings_fen", "days_worked"]
    assert rows[-1][:4] == ["total", "", "0", "0"]
    assert pages.get(f"/admin/workshops/{workshop.id}?month=2025-13").status_code == 422


# ---------------------------------------------------------------------------- the lead


def test_a_lead_sees_only_their_own_workshop_on_pages_and_in_the_api(
    app, signed_in, make_user, token_for
):
    lead, pages = signed_in("villager")
    mine = fulfillment.create_workshop(db.session, name="爱玲之家", village="松源")
    other = fulfillment.create_workshop(db.session, name="同心社区", village="同心")
    fulfillment.add_member(db.session, mine.id, user_id=lead.id, lead=True)
    stranger = make_user("villager")
    fulfillment.add_member(db.session, other.id, user_id=stranger.id, lead=False)
    db.session.commit()

    own = pages.get("/workshop/lead")
    assert own.status_code == 200
    html = own.get_data(as_text=True)
    assert "爱玲之家" in html and "同心社区" not in html and stranger.display_name not in html
    assert pages.get("/workshop/lead/report.csv").status_code == 200
    for path in (
        f"/workshop/lead?workshop={other.id}",
        f"/workshop/lead/report.csv?workshop={other.id}",
        f"/admin/workshops/{other.id}",
        f"/admin/workshops/{other.id}/report.csv",
        "/admin",
    ):
        assert pages.get(path).status_code == 403, path

    bearer = {"Authorization": f"Bearer {token_for(lead)}"}
    api = app.test_client()
    assert api.get(f"/api/v1/workshops/{mine.id}/report", headers=bearer).status_code == 200
    for path in ("report", "tasks", "members"):
        response = api.get(f"/api/v1/workshops/{other.id}/{path}", headers=bearer)
        assert response.status_code == 403, path
    assert api.get("/api/v1/workshops/report", headers=bearer).status_code == 403


def test_a_villager_who_is_not_a_lead_has_no_lead_page(signed_in):
    villager, pages = signed_in("villager")
    workshop = fulfillment.create_workshop(db.session, name="香信谷", village="竹口")
    fulfillment.add_member(db.session, workshop.id, user_id=villager.id, lead=False)
    db.session.commit()
    assert pages.get("/workshop/lead").status_code == 403
    assert pages.get(f"/workshop/lead?workshop={workshop.id}").status_code == 403


# ---------------------------------------------------------------------------- contracts


def test_the_weighing_station_shows_the_price_then_records_exactly_that(
    signed_in, make_user, make_product
):
    _, pages = signed_in("admin")
    world = make_farmer_statement(make_user("farmer"), make_product())
    contract = world["contract"]
    form = {
        "contract_id": contract.id,
        "weight_kg": "86.75",
        "delivered_on": world["deliveries"][1].delivered_on.isoformat(),
        "grade": "",
    }
    before = db.session.scalar(select(func.count()).select_from(Delivery))
    quote = pages.submit("/admin/weighing", "/admin/weighing", form)
    assert quote.status_code == 200
    assert "86.75 kg × ¥17.45 × 1.12 = ¥1,695.44" in quote.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == before

    saved = pages.submit("/admin/weighing", "/admin/weighing/record", form)
    assert saved.status_code == 302
    delivery = db.session.scalar(select(Delivery).order_by(Delivery.id.desc()).limit(1))
    assert (delivery.weight_g, delivery.amount_fen) == (86_750, 169_544)

    too_much = pages.submit("/admin/weighing", "/admin/weighing", {**form, "weight_kg": "5000"})
    assert too_much.status_code == 302
    assert "这份合同还剩" in pages.get("/admin/weighing").get_data(as_text=True)
    nonsense = pages.submit(
        "/admin/weighing", "/admin/weighing/record", {**form, "weight_kg": "1,5"}
    )
    assert nonsense.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == before + 1


def test_an_admin_drafts_and_terminates_a_contract(signed_in, make_user, make_product):
    _, pages = signed_in("admin")
    farmer = make_user("farmer")
    product = make_product()
    today = utcnow().date()
    form = {
        "farmer_id": farmer.id,
        "product_id": product.id,
        "grade": "standard",
        "premium_percent": "12.5",
        "committed_kg": "500",
        "starts_on": today.isoformat(),
        "ends_on": (today + timedelta(days=90)).isoformat(),
    }
    pages.submit("/admin/contracts", "/admin/contracts/new", {**form, "premium_percent": "20"})
    assert db.session.scalar(select(func.count()).select_from(Contract)) == 0
    pages.submit("/admin/contracts", "/admin/contracts/new", form)
    contract = db.session.scalar(select(Contract))
    assert (contract.premium_bp, contract.committed_kg, contract.state) == (1250, 500, "draft")

    pages.submit(
        "/admin/contracts", f"/admin/contracts/{contract.id}/terminate", {"reason": "重复"}
    )
    db.session.expire_all()
    assert db.session.get(Contract, contract.id).state == "terminated"


def test_a_csv_with_a_bad_line_is_shown_back_line_by_line_and_nothing_is_stored(
    signed_in, make_product
):
    _, pages = signed_in("admin")
    product = make_product(sku="QG-SHIITAKE-FRESH")
    text = (
        "product_sku,grade,price_fen_per_kg,effective_on,source\n"
        "QG-SHIITAKE-FRESH,standard,1745,2025-06-01,庆元香菇市场\n"
        "QG-SHIITAKE-FRESH,standard,17.45,2025-06-02,庆元香菇市场\n"
    )
    response = pages.submit("/admin/prices", "/admin/prices/import", {"csv_text": text})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-bad-line="3"' in html and 'data-bad-line="2"' not in html
    assert "以分为单位的整数" in html
    assert db.session.scalar(select(func.count()).select_from(MarketPrice)) == 0

    fixed = text.replace("17.45", "1750")
    assert (
        pages.submit("/admin/prices", "/admin/prices/import", {"csv_text": fixed}).status_code
        == 302
    )
    assert db.session.scalar(select(func.count()).select_from(MarketPrice)) == 2
    assert product.id


def test_a_failed_payout_is_sent_again_from_the_console(signed_in, make_user, make_product):
    _, pages = signed_in("admin")
    farmer = make_user("farmer")
    make_farmer_statement(farmer, make_product())
    contracts.set_payout_account(db.session, farmer.id, "acct_1TestFarmer")
    db.session.commit()
    payout = db.session.scalar(select(Payout))
    payouts.claim_payout(
        db.session,
        payout.id,
        currency="cny",
        provider="sandbox",
        now=utcnow(),
        sending_lease=sending_lease(),
    )
    payouts.record_failed(db.session, payout.id, message="Your account cannot receive transfers.")
    db.session.commit()
    assert "重试付款" in pages.get("/admin/payouts").get_data(as_text=True)

    pages.submit("/admin/payouts", f"/admin/payouts/{payout.id}/retry")
    db.session.expire_all()
    assert db.session.get(Payout, payout.id).state == "paid"
    again = pages.submit("/admin/payouts", f"/admin/payouts/{payout.id}/retry")
    assert again.status_code == 302  # only a failed one: refused with a message
    assert "只有失败的才能重试" in pages.get("/admin/payouts").get_data(as_text=True)


def test_a_dead_event_is_listed_and_sent_again(signed_in):
    _, pages = signed_in("admin")
    row = OutboxEvent(
        event="order.paid",
        handler="fulfillment.create_packing_task",
        payload={"order_id": 999_999},
        state="dead",
        attempts=10,
        next_attempt_at=utcnow(),
        last_error="boom",
    )
    db.session.add(row)
    db.session.commit()
    html = pages.get("/admin").get_data(as_text=True)
    assert f'data-event-id="{row.id}"' in html and "boom" in html
    pages.submit("/admin", f"/admin/events/{row.id}/retry")
    db.session.expire_all()
    assert db.session.get(OutboxEvent, row.id).state != "dead"
