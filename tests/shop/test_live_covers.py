"""Session covers: the owning streamer shows an uploaded image as a live session's cover;
every session response carries ``cover``; the storefront shows it; the migration adds
the column to a populated SQLite database in place."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from PIL import Image
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from shop.app import create_app
from shop.db import db
from shop.live.models import LiveSession


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def streamer(auth) -> tuple[Any, dict[str, str]]:
    return auth("streamer")


@pytest.fixture
def uploaded(client, streamer):
    """``uploaded(width, height, colour)`` → the media JSON of a new upload."""

    def make(width: int = 1600, height: int = 900, colour=(30, 120, 60)) -> dict[str, Any]:
        response = client.post(
            "/api/v1/media",
            data={"file": (io.BytesIO(png(width, height, colour)), "cover.png", "image/png")},
            headers=streamer[1],
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return make


@pytest.fixture
def own_session(make_live_session, streamer, make_product):
    return make_live_session([(make_product(), 2990, 5, None)], live=False, streamer=streamer[0])


def cover_of(media: dict[str, Any]) -> dict[str, Any]:
    return {"media_id": media["id"], "renditions": media["renditions"]}


def stored_cover(session_id: int) -> int | None:
    return db.session.get(LiveSession, session_id, populate_existing=True).cover_media_id


def test_the_streamer_sets_a_cover_and_every_session_response_shows_its_renditions(
    client, streamer, own_session, uploaded
):
    _, headers = streamer
    url = f"/api/v1/live-sessions/{own_session.id}"
    assert client.get(url).get_json()["cover"] is None
    media = uploaded()
    assert set(media["renditions"]) == {"thumb", "medium"}

    response = client.post(f"{url}/cover", json={"media_id": media["id"]}, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["cover"] == cover_of(media)
    assert body["id"] == own_session.id and len(body["listings"]) == 1  # the rest unchanged
    assert stored_cover(own_session.id) == media["id"]
    assert client.get(url).get_json()["cover"] == cover_of(media)
    # the URLs serve the renditions
    thumb = client.get(media["renditions"]["thumb"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp"
    assert Image.open(io.BytesIO(thumb.data)).size == (320, 180)

    # the other session endpoints answer with the cover too
    listing_id = body["listings"][0]["id"]
    for path in ("/start", f"/listings/{listing_id}/pin", "/end"):
        answered = client.post(f"{url}{path}", headers=headers)
        assert answered.status_code == 200, path
        assert answered.get_json()["cover"] == cover_of(media), path


def test_a_new_session_has_no_cover(client, streamer):
    response = client.post(
        "/api/v1/live-sessions",
        json={"title": "周五直播 Friday live", "scheduled_at": "2030-01-04T12:00:00+08:00"},
        headers=streamer[1],
    )
    assert response.status_code == 201
    assert response.get_json()["cover"] is None


def test_replacing_a_cover(client, streamer, own_session, uploaded):
    _, headers = streamer
    first, second = uploaded(colour=(200, 30, 30)), uploaded(800, 800, colour=(30, 30, 200))
    url = f"/api/v1/live-sessions/{own_session.id}/cover"
    client.post(url, json={"media_id": first["id"]}, headers=headers)
    response = client.post(url, json={"media_id": second["id"]}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["cover"] == cover_of(second)
    assert stored_cover(own_session.id) == second["id"]
    # setting the same cover again changes nothing
    again = client.post(url, json={"media_id": second["id"]}, headers=headers)
    assert again.status_code == 200 and again.get_json()["cover"] == cover_of(second)


@pytest.mark.parametrize("roles", [("streamer",), ("buyer",), ("villager",), ("farmer",)])
def test_only_the_owning_streamer_sets_the_cover(
    client, auth, streamer, own_session, uploaded, roles
):
    before, media = uploaded(colour=(10, 10, 10)), uploaded(colour=(250, 250, 250))
    client.post(
        f"/api/v1/live-sessions/{own_session.id}/cover",
        json={"media_id": before["id"]},
        headers=streamer[1],
    )
    _, headers = auth(*roles)  # another streamer, or not a streamer at all
    response = client.post(
        f"/api/v1/live-sessions/{own_session.id}/cover",
        json={"media_id": media["id"]},
        headers=headers,
    )
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert stored_cover(own_session.id) == before["id"]


def test_signing_in_is_required(client, own_session, uploaded):
    media = uploaded()
    response = client.post(
        f"/api/v1/live-sessions/{own_session.id}/cover", json={"media_id": media["id"]}
    )
    assert response.status_code == 401
    assert stored_cover(own_session.id) is None


def test_unknown_media_is_422_and_changes_nothing(client, streamer, own_session, uploaded):
    _, headers = streamer
    kept = uploaded()
    url = f"/api/v1/live-sessions/{own_session.id}/cover"
    client.post(url, json={"media_id": kept["id"]}, headers=headers)

    response = client.post(url, json={"media_id": 2**31 - 1}, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "media_id" in response.get_json()["errors"]
    assert stored_cover(own_session.id) == kept["id"]
    for bad in ({"media_id": "1"}, {"media_id": 1.5}, {}, {"media_id": 0}, {"media_id": None}):
        refused = client.post(url, json=bad, headers=headers)
        assert refused.status_code == 422, bad
        assert "media_id" in refused.get_json()["errors"], bad
    assert stored_cover(own_session.id) == kept["id"]
    assert client.get(f"/api/v1/live-sessions/{own_session.id}").get_json()["cover"] == (
        cover_of(kept)
    )


def test_an_unknown_session_is_404(client, streamer, uploaded):
    media = uploaded()
    response = client.post(
        "/api/v1/live-sessions/999999/cover", json={"media_id": media["id"]}, headers=streamer[1]
    )
    assert response.status_code == 404


def test_the_storefront_shows_the_cover_with_alt_text(client, streamer, own_session, uploaded):
    page = f"/live/{own_session.id}"
    assert 'class="cover"' not in client.get(page).get_data(as_text=True)
    media = uploaded(1600, 900)
    client.post(
        f"/api/v1/live-sessions/{own_session.id}/cover",
        json={"media_id": media["id"]},
        headers=streamer[1],
    )
    html = client.get(page).get_data(as_text=True)
    thumb, medium = media["renditions"]["thumb"], media["renditions"]["medium"]
    assert (
        f'<img class="cover" src="{thumb}" alt="{own_session.title}" width="320" height="180"'
        in html
    )
    assert f'srcset="{thumb} 320w, {medium} 1024w"' in html
    assert html.index('class="cover"') < html.index("<h1>")


def test_the_migration_adds_and_drops_the_column_on_a_populated_sqlite_database(
    tmp_path: Path,
):
    """SQLite refuses to DROP a table that listings point at (foreign keys are on), so
    the revision must change live_sessions in place, keeping every row."""
    config = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'upgrade.sqlite3'}",
        "SHANHUO_INSTANCE": str(tmp_path),
        "INSTANCE_DIR": str(tmp_path),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "SECRET_KEY": "test-secret",
        "CELERY_BROKER_URL": None,
    }
    app = create_app(config)
    with app.app_context():
        try:
            flask_migrate.upgrade(revision="0007_fulfillment")
            with db.engine.begin() as connection:
                for statement in (
                    "INSERT INTO users VALUES (1, 's@x.test', 's', 'x', '2030-01-01')",
                    "INSERT INTO products VALUES "
                    "(1, 'SKU-1', 'n', 'other', 'bag', 1, 100, 5, 0, '2030-01-01')",
                    "INSERT INTO live_sessions VALUES "
                    "(1, 1, 't', 'scheduled', '2030-01-01', NULL, NULL, NULL, '2030-01-01')",
                    "INSERT INTO live_listings VALUES "
                    "(1, 1, 1, 10, 2, 2, NULL, 0, 0, '2030-01-01')",
                    "INSERT INTO media VALUES "
                    "(1, '" + "a" * 64 + "', 'image/png', 1, 1, 1, NULL, '2030-01-01')",
                ):
                    connection.execute(text(statement))

            flask_migrate.upgrade(revision="0008_session_covers")
            with db.engine.begin() as connection:
                connection.execute(text("UPDATE live_sessions SET cover_media_id = 1"))
                with pytest.raises(IntegrityError, match="FOREIGN KEY"), connection.begin_nested():
                    connection.execute(text("UPDATE live_sessions SET cover_media_id = 99"))
                assert connection.execute(text("SELECT count(*) FROM live_listings")).scalar() == 1
                table_sql = connection.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'live_sessions'")
                ).scalar()
            # named by the convention (SQLAlchemy does not reflect inline constraint names)
            assert "CONSTRAINT fk_live_sessions_cover_media_id_media REFERENCES media" in table_sql
            assert "ck_live_sessions_state_known" in table_sql
            keys = inspect(db.engine).get_foreign_keys("live_sessions")
            cover_key = next(k for k in keys if k["referred_table"] == "media")
            assert cover_key["constrained_columns"] == ["cover_media_id"]

            flask_migrate.downgrade(revision="0007_fulfillment")
            columns = {c["name"] for c in inspect(db.engine).get_columns("live_sessions")}
            assert "cover_media_id" not in columns
            with db.engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM live_listings")).scalar() == 1
                assert connection.execute(text("SELECT title FROM live_sessions")).scalar() == "t"
                assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
        finally:
            db.engine.dispose()
