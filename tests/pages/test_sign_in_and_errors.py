"""Sign-in, sessions, CSRF, role landing, refusals and error pages, through the test client."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from shop.web import init_pages
from tests.pages.conftest import csrf_token

PAGES_BY_ROLE = {
    "villager": "/workshop",
    "farmer": "/farmer",
    "streamer": "/studio",
}


def is_html(response: Any) -> bool:
    return response.mimetype == "text/html"


def no_stack_trace(response: Any) -> bool:
    body = response.get_data(as_text=True)
    return "Traceback" not in body and 'File "' not in body


# ---------------------------------------------------------------------------- sign in


def test_the_login_page_is_chinese_alone_by_default(pages):
    response = pages.get("/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in html
    assert "登录" in html
    assert "Sign in" not in html  # one language at a time: no gloss under each label
    assert 'for="email"' in html and 'for="password"' in html


def test_a_browser_that_prefers_english_gets_english_until_the_person_picks(pages):
    english = pages.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in english.get_data(as_text=True)
    chinese = pages.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-CN">' in chinese.get_data(as_text=True)
    picked = pages.get("/login?lang=zh-CN", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in picked.get_data(as_text=True)


def test_english_alone_with_lang_en_and_it_is_remembered_in_a_cookie(pages):
    response = pages.get("/login?lang=en")
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Sign in" in html and "登录" not in html
    assert "lang=en" in response.headers["Set-Cookie"]
    again = pages.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in again


def test_signing_in_sets_an_httponly_samesite_lax_session_cookie(pages, make_user):
    user = make_user("villager")
    response = pages.login(user)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("shanhuo_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development: plain http on localhost


def test_the_session_cookie_is_secure_in_production():
    app = Flask("probe")
    app.config.update(SHANHUO_ENV="production", SECRET_KEY="probe")
    init_pages(app, [])
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_a_wrong_password_shows_a_message_and_signs_nobody_in(pages, make_user):
    user = make_user("villager")
    response = pages.login(user, password="not the password")
    assert response.status_code == 200
    assert "邮箱或密码不对" in response.get_data(as_text=True)
    assert pages.get("/workshop").status_code == 302  # still sent to /login


def test_after_signing_in_you_go_back_where_you_were_sent_from(pages, make_user):
    user = make_user("farmer")
    first = pages.get("/farmer")
    assert first.status_code == 302
    assert first.headers["Location"] == "/login?next=/farmer"
    token = csrf_token(pages.get("/login?next=/farmer").get_data(as_text=True))
    response = pages.client.post(
        "/login?next=/farmer",
        data={"email": user.email, "password": "correct horse battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/farmer"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_next_never_leads_off_the_site(pages, make_user, target):
    user = make_user("farmer")
    token = pages.token()
    response = pages.client.post(
        "/login",
        query_string={"next": target},
        data={"email": user.email, "password": "correct horse battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_logout_is_a_post_with_a_csrf_token(signed_in):
    _, pages = signed_in("villager")
    assert pages.client.get("/logout").status_code == 405
    assert pages.client.post("/logout").status_code == 400
    assert pages.get("/workshop").status_code == 200
    response = pages.submit("/workshop", "/logout")
    assert response.status_code == 302
    assert pages.get("/workshop").status_code == 302


# ---------------------------------------------------------------------------- landing


@pytest.mark.parametrize("role", sorted(PAGES_BY_ROLE))
def test_each_role_lands_on_its_own_page(signed_in, role):
    _, pages = signed_in(role)
    response = pages.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == PAGES_BY_ROLE[role]
    assert pages.get(PAGES_BY_ROLE[role]).status_code == 200


@pytest.mark.parametrize("role", sorted(PAGES_BY_ROLE))
def test_each_role_is_refused_the_other_roles_pages_with_an_html_403(signed_in, role):
    _, pages = signed_in(role)
    for other_role, path in PAGES_BY_ROLE.items():
        if other_role == role:
            continue
        response = pages.get(path)
        assert response.status_code == 403, path
        assert is_html(response)
        assert "这个页面不是给你的" in response.get_data(as_text=True)
        assert no_stack_trace(response)


def test_a_buyer_lands_on_a_menu_of_what_is_live(signed_in, make_user, make_product):
    from tests.pages.conftest import make_live_session

    streamer = make_user("streamer")
    live = make_live_session(streamer, [make_product()])
    _, pages = signed_in("buyer")
    response = pages.get("/")
    assert response.status_code == 200
    assert f'href="/live/{live.id}"' in response.get_data(as_text=True)


def test_someone_with_several_roles_gets_a_menu_of_their_pages(signed_in):
    _, pages = signed_in("villager", "farmer")
    html = pages.get("/").get_data(as_text=True)
    assert 'href="/workshop"' in html and 'href="/farmer"' in html


def test_nobody_signed_in_is_sent_to_the_login_page(pages):
    for path in ["/", "/workshop", "/farmer", "/studio", "/studio/sessions/1"]:
        response = pages.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next=")


# ---------------------------------------------------------------------------- CSRF

FORMS = [
    ("villager", "/workshop/claim"),
    ("villager", "/workshop/tasks/1/complete"),
    ("villager", "/workshop/tasks/1/release"),
    ("farmer", "/farmer/contracts/1/accept"),
    ("streamer", "/studio/sessions"),
    ("streamer", "/studio/sessions/1/listings"),
    ("streamer", "/studio/sessions/1/start"),
    ("streamer", "/studio/sessions/1/listings/1/pin"),
    ("streamer", "/studio/sessions/1/end"),
    ("buyer", "/live/1/buy/1"),
    ("buyer", "/live/orders/1/pay"),
]


@pytest.mark.parametrize(("role", "action"), FORMS)
def test_every_form_without_a_csrf_token_is_refused(signed_in, role, action):
    _, pages = signed_in(role)
    response = pages.client.post(action, data={"workshop_id": "1"})
    assert response.status_code == 400
    assert is_html(response)
    assert "表单已过期" in response.get_data(as_text=True)
    forged = pages.client.post(action, data={"csrf_token": "forged"})
    assert forged.status_code == 400


def test_the_login_form_needs_its_csrf_token_too(pages, make_user):
    user = make_user("farmer")
    response = pages.client.post(
        "/login", data={"email": user.email, "password": "correct horse battery"}
    )
    assert response.status_code == 400


def test_the_json_api_needs_no_csrf_token_even_with_a_session_cookie(signed_in, token_for):
    user, pages = signed_in("villager")
    response = pages.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {token_for(user)}"}
    )
    assert response.status_code == 200
    token = pages.client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": "correct horse battery"}
    )
    assert token.status_code == 200


def test_a_session_cookie_is_not_a_bearer_token_for_the_api(signed_in):
    _, pages = signed_in("villager")
    response = pages.client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


# ---------------------------------------------------------------------------- errors


def test_an_unknown_page_is_an_html_404_and_an_unknown_api_path_stays_problem_json(pages):
    page = pages.get("/no-such-page")
    assert page.status_code == 404
    assert is_html(page)
    assert "找不到这个页面" in page.get_data(as_text=True)
    api = pages.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.mimetype == "application/problem+json"


def test_a_missing_thing_on_a_page_is_an_html_404(signed_in):
    _, pages = signed_in("streamer")
    response = pages.get("/studio/sessions/999999")
    assert response.status_code == 404
    assert is_html(response)
    assert "没有这场直播（999999）。" in response.get_data(as_text=True)


def test_an_unexpected_failure_shows_a_human_message_not_a_stack_trace(
    signed_in, monkeypatch, caplog
):
    from fulfillment import claims

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals /srv/app.py line 12")

    monkeypatch.setattr(claims, "holding", broken)
    _, pages = signed_in("villager")
    response = pages.get("/workshop")
    assert response.status_code == 500
    assert is_html(response)
    html = response.get_data(as_text=True)
    assert "服务器出错了" in html
    assert "secret internals" not in html
    assert no_stack_trace(response)
    assert "page failed" in caplog.text


def test_page_routes_are_not_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert all(
        path.startswith("/api/") or path.startswith("/media/") or path in ("/healthz", "/readyz")
        for path in paths
    ), sorted(paths)


def test_pages_send_security_headers(pages):
    response = pages.get("/login")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_nul_character_in_a_form_is_a_human_422_page(pages):
    response = pages.client.post(
        "/login", data={"email": "a\x00@example.com", "password": "x", "csrf_token": pages.token()}
    )
    assert response.status_code == 422
    assert is_html(response)
    assert "填写的内容有问题" in response.get_data(as_text=True)
