"""A media disk that is full, read-only or failing: 507 / 503 problem+json, and nothing
half-written — no file left under MEDIA_ROOT, no database row.

Root ignores a read-only directory, so the disk is either a real tiny tmpfs (where
this machine lets the tests mount one) or our real ``LocalStorage`` whose one write
call meets the error a failing disk gives (the disk is the outside).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import func, select

from media.models import Media
from media.storage import LocalStorage
from shop.db import db
from tests.media.conftest import encode, two_tone

PROBLEM = "application/problem+json"


class FailingDisk(LocalStorage):
    """Local storage on a disk that takes ``works_for`` files, then fails the next
    write half-way with ``error`` (ENOSPC, EROFS, EIO)."""

    def __init__(self, root: Path, error: int, works_for: int) -> None:
        super().__init__(root)
        self.error = error
        self.works_for = works_for

    def _write(self, file: BinaryIO, data: bytes) -> None:
        if self.works_for == 0:
            file.write(data[: len(data) // 2])
            file.flush()
            raise OSError(self.error, os.strerror(self.error))
        self.works_for -= 1
        super()._write(file, data)


def media_count() -> int:
    return int(db.session.scalar(select(func.count()).select_from(Media)) or 0)


def assert_refused_and_nothing_written(
    response: Any, status: int, type_: str, before: set[Path], stored_files: Callable[[], set[Path]]
) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["type"] == type_ and response.json["detail"]
    if status == 503:
        assert int(response.headers["Retry-After"]) > 0
    assert stored_files() == before
    assert media_count() == 0


@pytest.mark.parametrize(
    ("error", "status", "type_"),
    [
        (errno.ENOSPC, 507, "insufficient-storage"),
        (errno.EROFS, 503, "unavailable"),
        (errno.EIO, 503, "unavailable"),
    ],
    ids=["full", "read-only", "io-error"],
)
@pytest.mark.parametrize("works_for", [0, 1], ids=["first-file", "after-the-original"])
def test_a_disk_that_fails_an_upload_answers_507_or_503_and_leaves_nothing_behind(
    app: Any,
    upload: Callable[..., Any],
    media_root: Path,
    stored_files: Callable[[], set[Path]],
    monkeypatch: pytest.MonkeyPatch,
    error: int,
    status: int,
    type_: str,
    works_for: int,
) -> None:
    monkeypatch.setitem(app.config, "MEDIA_STORAGE", FailingDisk(media_root, error, works_for))
    before = stored_files()
    # An original and two renditions; a size no other test uses, so none is stored yet.
    photo = encode(two_tone(1603, 1201), "JPEG", quality=90)

    response = upload(photo)

    assert_refused_and_nothing_written(response, status, type_, before, stored_files)


# ----------------------------------------------------- a real disk, where one can be mounted


@pytest.fixture
def tiny_disk(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MEDIA_ROOT on a 256 KiB tmpfs of its own (skipped where mounting is not allowed)."""
    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    monkeypatch.setitem(app.config, "MEDIA_ROOT", str(root))
    try:
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=True)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_a_full_disk_answers_507_and_leaves_no_partial_file(
    upload: Callable[..., Any], tiny_disk: Path
) -> None:
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (252 * 1024))  # one 4 KiB page left
    photo = encode(two_tone(1600, 1200), "JPEG", quality=90)

    response = upload(photo)

    assert_refused_and_nothing_written(
        response, 507, "insufficient-storage", {filler}, lambda: files_under(tiny_disk)
    )


def test_a_read_only_disk_answers_503_with_retry_after(
    upload: Callable[..., Any], tiny_disk: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)

    response = upload(encode(two_tone(), "PNG"))

    assert_refused_and_nothing_written(
        response, 503, "unavailable", set(), lambda: files_under(tiny_disk)
    )
