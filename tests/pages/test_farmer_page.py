"""The farmer's statement through the test client; its figures against the API's."""

from __future__ import annotations

import html as html_module
import re

from contracts import service as contracts
from shop.db import db
from shop.web.format import kg, percent_bp, yuan, yuan_per_kg
from tests.pages.conftest import make_farmer_statement


def card(html: str, element_id: str) -> str:
    match = re.search(rf'<article[^>]*id="{element_id}".*?</article>', html, re.S)
    assert match, f"no {element_id} on the page"
    return match.group(0)


def field(fragment: str, name: str) -> str:
    match = re.search(rf'data-field="{name}">([^<]*)<', fragment)
    assert match, f"no {name}"
    return html_module.unescape(match.group(1))


def test_the_statement_shows_what_the_api_says_in_yuan(signed_in, token_for, make_product):
    farmer, pages = signed_in("farmer")
    product = make_product(name="庆元鲜香菇 fresh shiitake", unit_weight_g=1000)
    world = make_farmer_statement(farmer, product)
    headers = {"Authorization": f"Bearer {token_for(farmer)}"}

    html = pages.get("/farmer").get_data(as_text=True)
    api_deliveries = pages.client.get("/api/v1/farmers/me/deliveries", headers=headers).get_json()
    api_payouts = pages.client.get("/api/v1/farmers/me/payouts", headers=headers).get_json()
    api_contracts = pages.client.get("/api/v1/farmers/me/contracts", headers=headers).get_json()

    assert len(api_deliveries["items"]) == 2
    for delivery in api_deliveries["items"]:
        shown = card(html, f"delivery-{delivery['id']}")
        assert field(shown, "amount") == yuan(delivery["amount_fen"])
        assert field(shown, "weight") == kg(delivery["weight_g"])
        assert field(shown, "market_price") == yuan_per_kg(delivery["market_price_fen_per_kg"])
        assert field(shown, "premium") == "+" + percent_bp(delivery["premium_bp"])
    # By hand: 123.4 kg × ¥17.45 × 1.12 = ¥2,411.73 (half up); 86.75 kg → ¥1,695.44
    amounts = {d["weight_g"]: d["amount_fen"] for d in api_deliveries["items"]}
    assert amounts == {123_400: 241_173, 86_750: 169_544}
    assert "¥2,411.73" in html and "¥1,695.44" in html

    contract = api_contracts["items"][0]
    shown = card(html, f"contract-{contract['id']}")
    assert field(shown, "premium") == "+12%"
    assert field(shown, "committed") == "2,000 kg"
    assert field(shown, "delivered") == "210.15 kg"
    assert contract["delivered_g"] == 210_150

    (payout,) = api_payouts["items"]
    shown = card(html, f"payout-{payout['id']}")
    assert field(shown, "amount") == yuan(payout["amount_fen"]) == "¥2,411.73"
    assert "待付" in field(shown, "state")
    # the reason it waits, in the farmer's words (the API keeps the operator's English)
    assert payout["reason"].startswith("No payout account")
    assert field(shown, "reason").startswith("还没有收款账户，请联系管理员添加。")
    for name, fen in api_payouts["totals"].items():
        if name == "adjustments_fen" and not fen:
            continue
        assert re.search(rf'data-total="{name}">{re.escape(yuan(fen))}<', html), name
    assert world["contract"].id == contract["id"]


def test_a_farmer_accepts_a_draft_contract_from_the_statement(signed_in, make_product):
    farmer, pages = signed_in("farmer")
    product = make_product()
    from datetime import date

    draft = contracts.create_contract(
        db.session,
        farmer_id=farmer.id,
        product_id=product.id,
        grade="standard",
        premium_bp=1100,
        committed_kg=50,
        starts_on=date(2025, 9, 1),
        ends_on=date(2025, 12, 31),
        created_by=None,
    )
    db.session.commit()
    html = pages.get("/farmer").get_data(as_text=True)
    assert "待接受" in card(html, f"contract-{draft.id}")
    pages.submit("/farmer", f"/farmer/contracts/{draft.id}/accept")
    html = pages.get("/farmer").get_data(as_text=True)
    assert f"合同 #{draft.id} 已接受" in html
    assert "生效中" in card(html, f"contract-{draft.id}")
    # Accepting twice is refused with the rule's message, not an error page.
    pages.submit("/farmer", f"/farmer/contracts/{draft.id}/accept")
    assert "只有草稿合同能被接受" in pages.get("/farmer").get_data(as_text=True)


def test_a_farmer_cannot_accept_or_see_another_farmers_contract(signed_in, make_user, make_product):
    other = make_user("farmer")
    make_farmer_statement(other, make_product())
    _, pages = signed_in("farmer")
    html = pages.get("/farmer").get_data(as_text=True)
    assert "还没有合同" in html and "还没有交货记录" in html and "还没有付款" in html
    contract_id = db.session.scalar(
        contracts.farmer_contracts_query(other.id).with_only_columns(
            contracts.Contract.id  # type: ignore[attr-defined]
        )
    )
    pages.submit("/farmer", f"/farmer/contracts/{contract_id}/accept")
    assert "没有这份合同" in pages.get("/farmer").get_data(as_text=True)


def test_a_bad_page_cursor_is_a_human_422(signed_in):
    _, pages = signed_in("farmer")
    for cursor in ["abc", "99999999999999999999", "-1"]:
        response = pages.get(f"/farmer?before={cursor}")
        assert response.status_code == 422, cursor
        assert "填写的内容有问题" in response.get_data(as_text=True)
