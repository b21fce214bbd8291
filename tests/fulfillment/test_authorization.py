"""Who may do what: non-members, buyers, farmers and another workshop's villager are
refused on every fulfillment endpoint, and a refusal changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fulfillment.models import EarningEntry, TaskState, Workshop
from shop.db import db
from tests.fulfillment.conftest import order_state, task_of


@pytest.fixture
def scene(client, make_workshop, villager_at, make_paid_order, auth):
    """Workshop W with a member holding a claim on task T (and a second member who does
    not); a second workshop with its own villager; a villager of no workshop; a buyer;
    a farmer."""
    workshop = make_workshop()
    elsewhere = make_workshop()
    claimer, claimer_h = villager_at(workshop)
    _, colleague_h = villager_at(workshop)
    _, other_villager_h = villager_at(elsewhere)
    _, loner_h = auth("villager")
    _, buyer_h = auth("buyer")
    _, farmer_h = auth("farmer")
    _, streamer_h = auth("streamer")
    order_id = make_paid_order()
    make_paid_order()  # elsewhere's task
    make_paid_order()  # a second queued task in W
    task_id = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=claimer_h).json[
        "id"
    ]
    return {
        "workshop": workshop.id,
        "task": task_id,
        "order": order_id,
        "claimer": claimer.id,
        "headers": {
            "claimer": claimer_h,
            "colleague": colleague_h,
            "other workshop's villager": other_villager_h,
            "villager of no workshop": loner_h,
            "buyer": buyer_h,
            "farmer": farmer_h,
            "streamer": streamer_h,
        },
    }


def endpoints(w: int, t: int, claimer: int) -> list[tuple[str, str, dict | None]]:
    return [
        ("POST", "/api/v1/workshops", {"name": "x", "village": "y"}),
        ("POST", f"/api/v1/workshops/{w}/members", {"user_id": claimer}),
        ("GET", f"/api/v1/workshops/{w}/members", None),
        ("POST", f"/api/v1/workshops/{w}/deactivate", None),
        ("POST", f"/api/v1/workshops/{w}/activate", None),
        ("GET", f"/api/v1/workshops/{w}/tasks", None),
        ("GET", f"/api/v1/workshops/{w}/tasks?state=claimed", None),
        ("POST", f"/api/v1/workshops/{w}/tasks/claim", None),
        ("GET", f"/api/v1/packing-tasks/{t}", None),
        ("POST", f"/api/v1/packing-tasks/{t}/complete", {}),
        ("POST", f"/api/v1/packing-tasks/{t}/release", None),
        ("POST", f"/api/v1/packing-tasks/{t}/extend", None),
        ("GET", f"/api/v1/packing-tasks/{t}/slip.png", None),
        ("GET", f"/api/v1/workshops/{w}/report", None),
        ("GET", "/api/v1/workshops/report", None),
    ]


OUTSIDERS = ["other workshop's villager", "villager of no workshop", "buyer", "farmer", "streamer"]


def _assert_untouched(scene) -> None:
    db.session.expire_all()
    task = task_of(scene["order"])
    assert (task.state, task.claimed_by) == (TaskState.CLAIMED, scene["claimer"])
    assert order_state(scene["order"]) == "packing"
    assert db.session.scalar(select(func.count()).select_from(EarningEntry)) == 0
    assert db.session.get(Workshop, scene["workshop"]).active is True
    assert db.session.scalar(select(func.count()).select_from(Workshop)) == 2


@pytest.mark.parametrize("who", OUTSIDERS)
def test_outsiders_are_refused_on_every_workshop_endpoint(client, scene, who):
    headers = scene["headers"][who]
    for method, path, body in endpoints(scene["workshop"], scene["task"], scene["claimer"]):
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 403, (who, method, path, response.json)
        assert response.json["type"] == "forbidden"
    _assert_untouched(scene)


def test_without_a_token_every_endpoint_is_401(client, scene):
    paths = endpoints(scene["workshop"], scene["task"], scene["claimer"])
    paths.append(("GET", "/api/v1/villagers/me/earnings", None))
    paths.append(("GET", "/api/v1/workshops", None))
    for method, path, body in paths:
        response = client.open(path, method=method, json=body)
        assert response.status_code == 401, (method, path)
    _assert_untouched(scene)


def test_a_colleague_sees_the_queue_but_cannot_complete_release_or_manage(client, scene):
    headers = scene["headers"]["colleague"]
    w, t = scene["workshop"], scene["task"]
    assert client.get(f"/api/v1/workshops/{w}/tasks", headers=headers).status_code == 200
    assert client.get(f"/api/v1/packing-tasks/{t}", headers=headers).status_code == 200
    for method, path, body in endpoints(w, t, scene["claimer"]):
        if (
            path.endswith(("/complete", "/release", "/extend"))
            or "/report" in path
            or path.endswith(("/workshops", "/members", "/deactivate", "/activate"))
        ):
            if method == "GET" and path.endswith("/members"):
                continue  # members may see who works with them
            response = client.open(path, method=method, json=body, headers=headers)
            assert response.status_code == 403, (method, path)
    _assert_untouched(scene)


def test_buyers_and_farmers_have_no_earnings_and_no_workshop_list(client, scene):
    for who in ("buyer", "farmer", "streamer"):
        headers = scene["headers"][who]
        assert client.get("/api/v1/villagers/me/earnings", headers=headers).status_code == 403
        assert client.get("/api/v1/workshops", headers=headers).status_code == 403


def test_a_villager_lists_only_their_own_workshops(client, scene):
    mine = client.get("/api/v1/workshops", headers=scene["headers"]["claimer"]).json["items"]
    assert [w["id"] for w in mine] == [scene["workshop"]]
    theirs = client.get(
        "/api/v1/workshops", headers=scene["headers"]["other workshop's villager"]
    ).json["items"]
    assert scene["workshop"] not in [w["id"] for w in theirs]
    none = client.get("/api/v1/workshops", headers=scene["headers"]["villager of no workshop"])
    assert none.json["items"] == []


def test_the_claimer_a_colleague_and_an_admin_get_the_packing_slip(client, scene, auth):
    _, admin = auth("admin")
    for headers in (scene["headers"]["claimer"], scene["headers"]["colleague"], admin):
        response = client.get(f"/api/v1/packing-tasks/{scene['task']}/slip.png", headers=headers)
        assert response.status_code == 200
        assert response.mimetype == "image/png"
        assert response.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_admin_endpoints_check_their_input(client, auth, make_workshop, make_user):
    _, admin = auth("admin")
    workshop = make_workshop()
    buyer = make_user("buyer")
    not_villager = client.post(
        f"/api/v1/workshops/{workshop.id}/members", json={"user_id": buyer.id}, headers=admin
    )
    assert not_villager.status_code == 422 and "villager" in not_villager.json["detail"]
    villager = make_user("villager")
    path = f"/api/v1/workshops/{workshop.id}/members"
    assert client.post(path, json={"user_id": villager.id}, headers=admin).status_code == 201
    assert client.post(path, json={"user_id": villager.id}, headers=admin).status_code == 409
    assert client.post(path, json={"user_id": 2**31 - 1}, headers=admin).status_code == 404
    assert client.post(path, json={"user_id": "7"}, headers=admin).status_code == 422
    missing = client.post(
        "/api/v1/workshops/2147483647/members", json={"user_id": 1}, headers=admin
    )
    assert missing.status_code == 404
    created = client.post(
        "/api/v1/workshops", json={"name": "洋墩 Yangdun", "village": "庆元"}, headers=admin
    )
    assert created.status_code == 201
    assert created.json == {
        "id": created.json["id"],
        "name": "洋墩 Yangdun",
        "village": "庆元",
        "active": True,
        "serves_disabled": False,
        "skill_bonus_bp": {"1": 0, "2": 0, "3": 0},
    }
    stored = db.session.get(Workshop, created.json["id"])
    assert (stored.name, stored.village, stored.active) == ("洋墩 Yangdun", "庆元", True)
    assert client.post("/api/v1/workshops", json={"name": ""}, headers=admin).status_code == 422
