"""Media errors: every refused upload is a 4xx problem of type ``image``."""

from __future__ import annotations

from shop.errors import DomainError


class UnsupportedImage(DomainError):
    """The bytes are not a JPEG, PNG or WebP (whatever the name or Content-Type says)."""

    type = "image"
    status = 415
    title = "Not a supported image"


class BadImage(DomainError):
    """The bytes claim to be a supported image but cannot be used: broken, truncated,
    or more pixels than ``MEDIA_MAX_PIXELS``."""

    type = "image"
    status = 422
    title = "The image cannot be used"
