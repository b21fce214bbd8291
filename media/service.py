"""Media rules: store an upload once (content-addressed), build and rebuild renditions,
find what a key is. Services never commit; the caller owns the transaction."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from media import images
from media.models import Media, MediaRendition
from media.storage import Storage, is_key
from shop.db import DbSession
from shop.errors import NotFound
from shop.i18n import _l

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _renditions(image: images.Image.Image, sizes: Mapping[str, int]) -> dict[str, images.Encoded]:
    return {name: images.rendition(image, longest) for name, longest in sizes.items()}


def upload(
    session: DbSession,
    storage: Storage,
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    uploaded_by_id: int | None = None,
) -> tuple[Media, bool]:
    """Clean and store an image with its renditions; returns ``(media, created)``.

    The same image again returns the existing record (``created`` False). Raises
    UnsupportedImage or BadImage, or StorageFull or StorageUnavailable when the disk
    fails; in each case nothing at all has been written.
    """
    cleaned = images.clean(data, max_pixels=max_pixels)
    key = sha256_hex(cleaned.data)
    existing = session.scalar(select(Media).where(Media.sha256 == key))
    if existing is not None:
        return existing, False

    rendered = _renditions(cleaned.image, images.RENDITION_SIZES)
    media = Media(
        sha256=key,
        content_type=cleaned.content_type,
        width=cleaned.width,
        height=cleaned.height,
        byte_size=len(cleaned.data),
        uploaded_by_id=uploaded_by_id,
    )
    files = {key: cleaned.data}
    for name, encoded in rendered.items():
        rendition_key = sha256_hex(encoded.data)
        files[rendition_key] = encoded.data
        media.renditions.append(_rendition_row(name, rendition_key, encoded))
    # Files before the row: a committed row never points at a missing file. If the
    # transaction fails afterwards the files stay as harmless, unreferenced blobs.
    _store_all(storage, files)
    try:
        with session.begin_nested():
            session.add(media)
            session.flush()  # the UNIQUE sha256 decides a race between two equal uploads
    except IntegrityError:
        winner = session.scalar(select(Media).where(Media.sha256 == key))
        if winner is None:
            raise
        return winner, False
    return media, True


def _store_all(storage: Storage, files: Mapping[str, bytes]) -> None:
    """Store every file or none: when the disk fails part-way (full, read-only, I/O
    error), the files this call added are removed again before the error goes on."""
    added: list[str] = []
    try:
        for key, data in files.items():
            if not storage.exists(key):
                storage.put(key, data)
                added.append(key)
    except Exception:
        for key in added:
            try:
                storage.delete(key)
            except OSError:
                log.warning("media: could not remove %s after a failed upload", key)
        raise


def _rendition_row(name: str, key: str, encoded: images.Encoded) -> MediaRendition:
    return MediaRendition(
        name=name,
        key=key,
        content_type=encoded.content_type,
        width=encoded.width,
        height=encoded.height,
        byte_size=len(encoded.data),
    )


def get_media(session: DbSession, media_id: int) -> Media:
    """The media record. Raises NotFound."""
    media = session.get(Media, media_id)
    if media is None:
        raise NotFound(_l("No media %(media_id)s.", media_id=media_id))
    return media


def render(
    session: DbSession,
    storage: Storage,
    media_id: int,
    sizes: Mapping[str, int] | None = None,
) -> Media:
    """(Re)build a media's renditions from its stored original; idempotent.

    Unchanged sizes give byte-identical renditions, hence the same keys and no
    change. Raises NotFound if the record or its original is missing.
    """
    media = get_media(session, media_id)
    original = storage.get(media.sha256)
    if original is None:
        raise NotFound(
            _l("The original of media %(media_id)s is missing from storage.", media_id=media_id)
        )
    wanted = dict(images.RENDITION_SIZES if sizes is None else sizes)
    rendered = _renditions(images.open_stored(original), wanted)
    by_name = {r.name: r for r in media.renditions}
    for name, encoded in rendered.items():
        key = sha256_hex(encoded.data)
        storage.put(key, encoded.data)
        row = by_name.get(name)
        if row is None:
            media.renditions.append(_rendition_row(name, key, encoded))
        elif row.key != key:
            row.key, row.width, row.height = key, encoded.width, encoded.height
            row.byte_size, row.content_type = len(encoded.data), encoded.content_type
    for name, row in by_name.items():
        if name not in wanted:
            media.renditions.remove(row)
    return media


def all_media_ids(session: DbSession) -> list[int]:
    return list(session.scalars(select(Media.id).order_by(Media.id)))


def content_type_of(session: DbSession, key: str) -> str | None:
    """The Content-Type of a stored key (an original or a rendition), None if unknown."""
    if not is_key(key):
        return None
    found = session.scalar(select(Media.content_type).where(Media.sha256 == key))
    if found is None:
        found = session.scalar(
            select(MediaRendition.content_type).where(MediaRendition.key == key).limit(1)
        )
    return found


def url_for_key(key: str, url_base: str) -> str:
    return f"{url_base.rstrip('/')}/{key}"


def rendition_urls(media: Media, url_base: str) -> dict[str, str]:
    return {r.name: url_for_key(r.key, url_base) for r in media.renditions}


def renditions_by_media(
    session: DbSession, media_ids: Iterable[int], url_base: str
) -> dict[int, dict[str, str]]:
    """``{media_id: {rendition name: url}}`` for many media in one query."""
    ids = set(media_ids)
    result: dict[int, dict[str, str]] = {media_id: {} for media_id in ids}
    if not ids:
        return result
    rows = session.execute(
        select(MediaRendition.media_id, MediaRendition.name, MediaRendition.key).where(
            MediaRendition.media_id.in_(ids)
        )
    )
    for media_id, name, key in rows:
        result[media_id][name] = url_for_key(key, url_base)
    return result


def media_json(media: Media, url_base: str) -> dict[str, object]:
    """A media record as the API shows it."""
    return {
        "id": media.id,
        "sha256": media.sha256,
        "width": media.width,
        "height": media.height,
        "content_type": media.content_type,
        "byte_size": media.byte_size,
        "url": url_for_key(media.sha256, url_base),
        "renditions": rendition_urls(media, url_base),
    }
