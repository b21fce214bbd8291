"""Media endpoints: upload an image; serve stored images and renditions."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from werkzeug.datastructures import FileStorage

from media import service
from media.schemas import MediaOut, UploadIn
from media.storage import storage_from_config
from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, public, requires
from shop.db import db
from shop.errors import NotFound, ValidationFailed
from shop.i18n import N_, _l

blp = Blueprint("media", __name__, description="Images: upload, renditions, serving")

#: Keys are content hashes: the bytes under a key never change.
IMMUTABLE = "public, max-age=31536000, immutable"

_IMAGE_CONTENT = {"schema": {"type": "string", "format": "binary"}}


@blp.route("/api/v1/media", methods=["POST"])
@requires(Role.ADMIN, Role.STREAMER)
@blp.arguments(UploadIn, location="files")
@blp.response(201, MediaOut, description="A new image, stored with its renditions.")
@blp.alt_response(200, schema=MediaOut, description="The same image was already stored.")
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE", description="over MAX_CONTENT_LENGTH")
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE", description="image: not JPEG/PNG/WebP")
@blp.alt_response(
    422, response="UNPROCESSABLE_ENTITY", description="image: broken, or too many pixels"
)
def upload(files: dict[str, Any]) -> Any:
    """Upload a product photo or stream cover (multipart ``file``).

    The format is read from the bytes. The stored original and its renditions are
    upright, sRGB and carry no metadata (no EXIF, GPS, XMP, ICC or comments).
    Uploading the same image again answers 200 with the existing record.
    """
    upload = files["file"]
    if not isinstance(upload, FileStorage):
        raise ValidationFailed(
            _l("Send the image as a multipart file."), {"file": [N_("Not a file.")]}
        )
    config = current_app.config
    media, created = service.upload(
        db.session,
        storage_from_config(config),
        upload.stream.read(),
        max_pixels=config["MEDIA_MAX_PIXELS"],
        uploaded_by_id=current_user().id,
    )
    db.session.commit()
    return service.media_json(media, config["MEDIA_URL_BASE"]), 201 if created else 200


@blp.route("/media/<key>", methods=["GET"])
@public
@blp.doc(
    responses={
        "200": {
            "description": "The stored image or rendition; cached for a year (immutable).",
            "content": {t: _IMAGE_CONTENT for t in ("image/jpeg", "image/png", "image/webp")},
        }
    }
)
@blp.alt_response(404, response="NOT_FOUND")
def serve(key: str) -> Response:
    """A stored image or rendition by its key (the SHA-256 of its bytes)."""
    content_type = service.content_type_of(db.session, key)
    data = storage_from_config(current_app.config).get(key) if content_type else None
    if content_type is None or data is None:
        raise NotFound(_l("No such image."))
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.set_etag(key)
    return response
