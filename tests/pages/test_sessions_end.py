"""Sessions end on the server: a saved page cookie is refused after logout, "sign out
everywhere" ends every cookie and token, a changed password ends them too."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import Pages

COOKIE = "shanhuo_session"


def saved_cookie(pages: Pages) -> str:
    """The session cookie as a browser keeps it after showing a page (with its CSRF secret)."""
    pages.get("/account")
    cookie = pages.client.get_cookie(COOKIE)
    assert cookie is not None
    return str(cookie.value)


def browser_with(app: Flask, cookie: str) -> Any:
    """Another browser, holding a copy of a saved session cookie."""
    client = app.test_client()
    client.set_cookie(COOKIE, cookie)
    return client


def signed_in_elsewhere(app: Flask, user: Any) -> Pages:
    other = Pages(app.test_client())
    assert other.login(user).status_code == 302
    return other


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_saved_page_cookie_is_refused_after_logout(app, signed_in):
    _, pages = signed_in("villager")
    cookie = saved_cookie(pages)
    assert browser_with(app, cookie).get("/workshop").status_code == 200

    assert pages.submit("/workshop", "/logout").status_code == 302

    replayed = browser_with(app, cookie).get("/workshop")
    assert replayed.status_code == 302
    assert replayed.headers["Location"].startswith("/login")


def test_signing_in_again_after_logout_works(signed_in):
    user, pages = signed_in("villager")
    pages.submit("/workshop", "/logout")
    assert pages.login(user).status_code == 302
    assert pages.get("/workshop").status_code == 200


def test_the_account_page_offers_a_new_password_and_signing_out_everywhere(signed_in):
    user, pages = signed_in("farmer")
    html = pages.get("/account").get_data(as_text=True)
    assert user.email in html
    assert 'action="/account/password"' in html
    assert 'for="current_password"' in html and 'for="new_password"' in html
    assert 'action="/account/sign-out-everywhere"' in html
    assert 'href="/account"' in pages.get("/farmer").get_data(as_text=True)


def test_the_account_page_needs_a_signed_in_user(pages):
    response = pages.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/account"


def test_sign_out_everywhere_ends_every_page_session_and_token(app, signed_in, token_for):
    user, pages = signed_in("villager")
    other = signed_in_elsewhere(app, user)
    token = token_for(user)

    response = pages.submit("/account", "/account/sign-out-everywhere")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert pages.get("/workshop").status_code == 302
    assert other.get("/workshop").status_code == 302
    assert other.client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_sign_out_everywhere_is_a_csrf_checked_post(signed_in):
    _, pages = signed_in("villager")
    assert pages.client.get("/account/sign-out-everywhere").status_code == 405
    assert pages.client.post("/account/sign-out-everywhere").status_code == 400
    assert pages.get("/workshop").status_code == 200


def test_changing_the_password_by_api_ends_every_token_and_page_session(
    app, client, signed_in, token_for
):
    user, pages = signed_in("villager")
    cookie = saved_cookie(pages)
    first, second = token_for(user), token_for(user)

    changed = client.post(
        "/api/v1/me/password",
        headers=bearer(first),
        json={"current_password": TEST_PASSWORD, "new_password": "new mountain pomelo"},
    )

    assert changed.status_code == 204
    for token in (first, second):
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    replayed = browser_with(app, cookie).get("/workshop")
    assert replayed.status_code == 302
    assert replayed.headers["Location"].startswith("/login")
    assert pages.get("/workshop").status_code == 302
    # the new password works, the old one no longer does
    login = {"email": user.email, "password": "new mountain pomelo"}
    assert client.post("/api/v1/auth/token", json=login).status_code == 200
    login["password"] = TEST_PASSWORD
    assert client.post("/api/v1/auth/token", json=login).status_code == 401


def test_a_wrong_current_password_is_403_and_changes_nothing(client, auth):
    user, headers = auth("buyer")
    response = client.post(
        "/api/v1/me/password",
        headers=headers,
        json={"current_password": "not it at all", "new_password": "new mountain pomelo"},
    )
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "forbidden"
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    login = {"email": user.email, "password": TEST_PASSWORD}
    assert client.post("/api/v1/auth/token", json=login).status_code == 200


def test_a_new_password_shorter_than_8_characters_is_422(client, auth):
    _, headers = auth("buyer")
    response = client.post(
        "/api/v1/me/password",
        headers=headers,
        json={"current_password": TEST_PASSWORD, "new_password": "short"},
    )
    assert response.status_code == 422
    assert "new_password" in response.get_json()["errors"]
    assert client.get("/api/v1/me", headers=headers).status_code == 200


def test_changing_the_password_needs_a_token(client):
    response = client.post(
        "/api/v1/me/password", json={"current_password": "x", "new_password": "long enough"}
    )
    assert response.status_code == 401


def test_changing_the_password_on_the_page_keeps_this_browser_and_ends_the_others(
    app, signed_in, token_for
):
    user, pages = signed_in("villager")
    other = signed_in_elsewhere(app, user)
    token = token_for(user)

    response = pages.submit(
        "/account",
        "/account/password",
        {"current_password": TEST_PASSWORD, "new_password": "new mountain pomelo"},
    )

    assert response.status_code == 302
    assert "密码已修改" in pages.get("/account").get_data(as_text=True)
    assert pages.get("/workshop").status_code == 200
    assert other.get("/workshop").status_code == 302
    assert other.client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_a_wrong_current_password_on_the_page_says_so_and_ends_nothing(app, signed_in):
    user, pages = signed_in("villager")
    other = signed_in_elsewhere(app, user)
    pages.submit(
        "/account",
        "/account/password",
        {"current_password": "not it at all", "new_password": "new mountain pomelo"},
    )
    assert "当前密码不对" in pages.get("/account").get_data(as_text=True)
    assert other.get("/workshop").status_code == 200
