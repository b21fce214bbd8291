"""The pages share the API's input rules (a schedule in year 9999 is refused, not a 500),
and a signed-in page is never stored by a cache."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from shop.db import db
from shop.live.models import LiveSession


@pytest.mark.parametrize("when", ["9999-12-31T23:59", "0001-01-01T00:00", "1999-12-31T12:00"])
def test_a_schedule_outside_the_sane_range_is_refused_on_the_studio_page(signed_in, caplog, when):
    _, pages = signed_in("streamer")
    response = pages.submit(
        "/studio", "/studio/sessions", {"title": "直播 Live", "scheduled_at": when}
    )

    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(LiveSession)) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_blank_title_is_refused_on_the_studio_page(signed_in):
    _, pages = signed_in("streamer")
    pages.submit(
        "/studio", "/studio/sessions", {"title": "   ", "scheduled_at": "2030-01-01T10:00"}
    )

    assert db.session.scalar(select(func.count()).select_from(LiveSession)) == 0


def test_a_signed_in_page_is_not_stored(signed_in):
    _, pages = signed_in("villager")
    response = pages.get("/")

    assert "no-store" in response.headers["Cache-Control"]


def test_a_page_session_cookie_makes_even_a_non_html_answer_not_stored(signed_in):
    _, pages = signed_in("buyer")
    response = pages.client.get("/api/v1/products")

    assert response.headers["Cache-Control"] == "no-store"


def test_the_api_docs_render_in_a_browser_that_can_reach_no_other_host(live_server, phone):
    """Swagger UI works offline: every request to another host is cut, and it still renders."""
    from playwright.sync_api import expect

    page = phone("en")
    elsewhere: list[str] = []

    def only_ours(route, request):
        if request.url.startswith(live_server.url):
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto("/api/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Shanhuo")
    assert elsewhere == []
