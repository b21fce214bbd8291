"""The villager's task board through the test client: claim, slip, done, release, earnings."""

from __future__ import annotations

import re

from fulfillment.models import PackingTask
from shop.db import db
from tests.pages.conftest import make_paid_order, make_workshop_with


def task_id_in(html: str) -> int:
    match = re.search(r'id="task-(\d+)"', html)
    assert match, "no claimed task on the board"
    return int(match.group(1))


def test_a_villager_claims_sees_the_parcel_prints_the_slip_and_is_paid(
    signed_in, make_user, make_product
):
    villager, pages = signed_in("villager")
    workshop = make_workshop_with(villager)
    product = make_product(name="庆元香菇 Shiitake 500 g", packing_rate_fen=65)
    order_id = make_paid_order(make_user("buyer"), product, qty=3)

    board = pages.get("/workshop").get_data(as_text=True)
    assert "领取下一个任务" in board
    assert "¥0.00" in board

    claimed = pages.submit("/workshop", "/workshop/claim", {"workshop_id": workshop.id})
    assert claimed.status_code == 302
    board = pages.get("/workshop").get_data(as_text=True)
    task_id = task_id_in(board)
    assert f"订单 #{order_id}" in board
    assert "3 ×" in board and "庆元香菇 Shiitake 500 g" in board
    assert "浙江 Zhejiang" in board  # the recipient's region
    assert "王女士" not in board  # the name is on the slip, not on the board
    assert "¥1.95" in board  # 3 × 65 fen
    assert "领取下一个任务" not in board  # one task at a time

    slip = pages.get(f"/workshop/tasks/{task_id}/slip.png")
    assert slip.status_code == 200
    assert slip.mimetype == "image/png"
    assert slip.data.startswith(b"\x89PNG")

    done = pages.submit("/workshop", f"/workshop/tasks/{task_id}/complete", {"packed_weight_g": ""})
    assert done.status_code == 302
    board = pages.get("/workshop").get_data(as_text=True)
    assert f"任务 #{task_id} 完成，工钱 ¥1.95" in board
    assert re.search(r'id="earned-today">¥1.95<', board)
    assert re.search(r'id="earned-week">¥1.95<', board)
    task = db.session.get(PackingTask, task_id, populate_existing=True)
    assert task.state == "packed" and task.packed_by == villager.id


def test_releasing_puts_the_task_back_and_the_weight_is_recorded_when_given(
    signed_in, make_user, make_product
):
    villager, pages = signed_in("villager")
    workshop = make_workshop_with(villager)
    make_paid_order(make_user("buyer"), make_product(unit_weight_g=500), qty=2)
    pages.submit("/workshop", "/workshop/claim", {"workshop_id": workshop.id})
    task_id = task_id_in(pages.get("/workshop").get_data(as_text=True))

    pages.submit("/workshop", f"/workshop/tasks/{task_id}/release")
    board = pages.get("/workshop").get_data(as_text=True)
    assert f"任务 #{task_id} 已放回" in board
    assert db.session.get(PackingTask, task_id, populate_existing=True).state == "queued"

    pages.submit("/workshop", "/workshop/claim", {"workshop_id": workshop.id})
    bad = pages.submit(
        "/workshop", f"/workshop/tasks/{task_id}/complete", {"packed_weight_g": "1kg"}
    )
    assert bad.status_code == 302
    assert "重量要填整数克" in pages.get("/workshop").get_data(as_text=True)
    pages.submit("/workshop", f"/workshop/tasks/{task_id}/complete", {"packed_weight_g": "1003"})
    task = db.session.get(PackingTask, task_id, populate_existing=True)
    assert task.state == "packed" and task.packed_weight_g == 1003


def test_an_empty_queue_says_so(signed_in):
    villager, pages = signed_in("villager")
    workshop = make_workshop_with(villager)
    pages.submit("/workshop", "/workshop/claim", {"workshop_id": workshop.id})
    assert "现在没有要打包的订单" in pages.get("/workshop").get_data(as_text=True)


def test_a_villager_outside_any_workshop_is_told_whom_to_ask(signed_in):
    _, pages = signed_in("villager")
    html = pages.get("/workshop").get_data(as_text=True)
    assert "你还没有加入工坊" in html
    assert "领取下一个任务" not in html


def test_claiming_at_someone_elses_workshop_is_refused_with_a_message(
    signed_in, make_user, make_product
):
    other = make_workshop_with(make_user("villager"), name="洋墩 Yangdun")
    make_paid_order(make_user("buyer"), make_product())
    _, pages = signed_in("villager")
    pages.submit("/workshop", "/workshop/claim", {"workshop_id": other.id})
    html = pages.get("/workshop").get_data(as_text=True)
    assert "你不是这个工坊的成员，请联系管理员。" in html
    assert "这个页面不是给你的" not in html
    assert 'id="task-' not in html


def test_another_villager_cannot_finish_release_or_see_the_slip_of_a_task_elsewhere(
    app, signed_in, make_user, make_product
):
    holder = make_user("villager")
    workshop = make_workshop_with(holder)
    make_paid_order(make_user("buyer"), make_product())
    from fulfillment import claims, clock

    task = claims.claim_next(
        db.session,
        workshop.id,
        user_id=holder.id,
        now=clock.now(),
        lease_s=1800,
        max_claims=1,
    )
    db.session.commit()

    _, pages = signed_in("villager")
    pages.submit("/workshop", f"/workshop/tasks/{task.id}/complete")
    board = pages.get("/workshop").get_data(as_text=True)
    # the reason, in plain words — not "this page is not for you"
    assert "这单已经被别人领走了，不是你的任务。" in board
    assert "这个页面不是给你的" not in board
    pages.submit("/workshop", f"/workshop/tasks/{task.id}/release")
    assert db.session.get(PackingTask, task.id, populate_existing=True).state == "claimed"
    slip = pages.get(f"/workshop/tasks/{task.id}/slip.png")
    assert slip.status_code == 403
    assert slip.mimetype == "text/html"
