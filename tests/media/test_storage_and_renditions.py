"""Content-addressed storage, rebuilding renditions (service, Celery task, CLI)."""

from __future__ import annotations

import hashlib
import io
import logging

import pytest
from PIL import Image
from sqlalchemy import func, select

from media import service
from media.models import Media, MediaRendition
from media.storage import LocalStorage
from media.tasks import render
from shop.db import db
from tests.media.conftest import encode, two_tone


def test_local_storage_writes_atomically_and_never_leaves_temporary_files(tmp_path):
    storage = LocalStorage(tmp_path)
    data = b"hello"
    key = hashlib.sha256(data).hexdigest()
    storage.put(key, data)
    storage.put(key, data)  # again: a no-op
    assert storage.get(key) == data and storage.exists(key)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [key]
    assert storage.path(key) == tmp_path / key[:2] / key[2:4] / key


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    storage = LocalStorage(tmp_path)
    key = "ab" * 32

    class Unwritable:
        def __len__(self) -> int:
            return 1

    with pytest.raises(TypeError):
        storage.put(key, Unwritable())  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert not storage.exists(key)


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "..", "/etc/passwd", "A" * 64, "0" * 63, "0" * 64 + "/x", ""]
)
def test_storage_refuses_anything_but_a_hex_digest(tmp_path, key):
    storage = LocalStorage(tmp_path)
    assert storage.get(key) is None and not storage.exists(key)
    with pytest.raises(ValueError):
        storage.put(key, b"x")
    storage.delete(key)  # quietly nothing


def _upload(app, width: int = 1600, height: int = 1200) -> Media:
    storage = LocalStorage(app.config["MEDIA_ROOT"])
    media, _ = service.upload(db.session, storage, encode(two_tone(width, height), "PNG"))
    db.session.commit()
    return media


def _renditions(media_id: int) -> dict[str, tuple[str, int, int]]:
    db.session.expire_all()  # the render task writes through a Session of its own
    rows = db.session.scalars(select(MediaRendition).where(MediaRendition.media_id == media_id))
    return {r.name: (r.key, r.width, r.height) for r in rows}


def test_rendering_again_with_the_same_sizes_changes_nothing(app, db_session):
    media = _upload(app)
    before = _renditions(media.id)
    render(media.id)
    render(media.id)
    assert _renditions(media.id) == before
    assert before["thumb"][1:] == (320, 240) and before["medium"][1:] == (1024, 768)


def test_new_sizes_give_new_keys_and_new_files(app, db_session):
    media = _upload(app)
    storage = LocalStorage(app.config["MEDIA_ROOT"])
    old = _renditions(media.id)
    service.render(db.session, storage, media.id, {"thumb": 200, "large": 1400})
    db.session.commit()
    new = _renditions(media.id)
    assert set(new) == {"thumb", "large"}
    assert new["thumb"][0] != old["thumb"][0] and new["thumb"][1:] == (200, 150)
    assert new["large"][1:] == (1400, 1050)
    for key, width, height in new.values():
        assert Image.open(io.BytesIO(storage.get(key) or b"")).size == (width, height)


def test_the_render_task_rebuilds_lost_renditions(app, db_session):
    media = _upload(app, 900, 600)
    storage = LocalStorage(app.config["MEDIA_ROOT"])
    keys = {name: key for name, (key, _, _) in _renditions(media.id).items()}
    for row in list(media.renditions):
        media.renditions.remove(row)
    db.session.commit()
    for key in keys.values():
        storage.delete(key)
    render(media.id)
    assert {name: key for name, (key, _, _) in _renditions(media.id).items()} == keys
    assert all(storage.exists(key) for key in keys.values())


def test_the_render_task_skips_unknown_media(app, db_session, caplog):
    """Logged, not raised: there is nothing a retry could fix."""
    media = _upload(app)
    before = _renditions(media.id)
    with caplog.at_level(logging.WARNING, logger="media.tasks"):
        assert render(2**31 - 1) is None
    assert f"media.render({2**31 - 1})" in caplog.text
    assert _renditions(media.id) == before
    count = select(func.count()).select_from(MediaRendition)
    assert db.session.scalar(count) == len(before)


def test_shanhuo_media_rebuild_runs_the_task_for_every_image(app, db_session):
    first, second = _upload(app, 700, 500), _upload(app, 500, 700)
    for media in (first, second):
        for row in list(media.renditions):
            media.renditions.remove(row)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["media", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "media.render sent for" in result.output
    assert set(_renditions(first.id)) == set(_renditions(second.id)) == {"thumb", "medium"}
    only = app.test_cli_runner().invoke(args=["media", "rebuild", "--id", str(first.id)])
    assert "for 1 image(s)" in only.output
