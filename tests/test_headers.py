"""Response headers: no-store on what may be personal, Swagger UI from our own files,
HSTS in production only."""

from __future__ import annotations

import re

import pytest


def test_an_authenticated_api_answer_is_not_stored(client, auth):
    _, headers = auth("buyer")
    response = client.get("/api/v1/me", headers=headers)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_an_authenticated_answer_to_a_public_read_is_not_stored_either(client, auth):
    _, headers = auth("admin")
    assert client.get("/api/v1/products", headers=headers).headers["Cache-Control"] == "no-store"


def test_refusals_to_a_signed_in_caller_are_not_stored(client, auth):
    _, headers = auth("buyer")
    response = client.get("/api/v1/orders/999999", headers=headers)

    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/auth/register",
            {"email": "cache@b.cn", "password": "long enough", "display_name": "x"},
        ),
        ("/api/v1/auth/token", {"email": "cache@b.cn", "password": "wrong password"}),
    ],
)
def test_an_anonymous_write_is_not_stored_its_answer_may_be_an_email_or_a_token(client, path, body):
    response = client.post(path, json=body)
    assert response.headers["Cache-Control"] == "no-store"


def test_an_anonymous_read_of_public_data_may_be_cached(client):
    response = client.get("/api/v1/products")

    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


# ---------------------------------------------------------------------------- /api/docs


def test_the_api_docs_page_loads_only_files_served_by_this_app(client):
    page = client.get("/api/docs")
    html = page.get_data(as_text=True)
    references = re.findall(r'(?:src|href)="([^"]+)"', html)

    assert page.status_code == 200
    assert references, html
    assert "//" not in "".join(references)  # no CDN, no other host
    for reference in references:
        with client.get(reference) as served:
            assert served.status_code == 200, reference
            assert served.get_data()
    with client.get("/api/docs/swagger-ui-bundle.js") as script:
        assert script.mimetype in ("application/javascript", "text/javascript")
    with client.get("/api/docs/swagger-ui.css") as style:
        assert style.mimetype == "text/css"


@pytest.mark.parametrize(
    "name", ["index.html", "..%2Fpyproject.toml", "swagger-ui.js.map", "x" * 65]
)
def test_only_the_swagger_ui_files_the_page_needs_are_served(client, name):
    response = client.get(f"/api/docs/{name}")
    assert response.status_code == 404


# ---------------------------------------------------------------------------- HSTS


def test_no_hsts_outside_production(client):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


def test_hsts_on_every_answer_in_production(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SHANHUO_ENV", "production")
    for path in ("/healthz", "/api/v1/products", "/api/v1/no-such-thing", "/login"):
        hsts = client.get(path).headers.get("Strict-Transport-Security", "")
        assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31536000
