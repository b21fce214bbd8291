"""Media errors: every refused upload is a 4xx problem of type ``image``; a disk that
cannot take it is a 507 (full) or 503 (read-only, failing)."""

from __future__ import annotations

from typing import ClassVar

from shop.errors import DomainError
from shop.i18n import N_


class UnsupportedImage(DomainError):
    """The bytes are not a JPEG, PNG or WebP (whatever the name or Content-Type says)."""

    type = "image"
    status = 415
    title = N_("Not a supported image")


class BadImage(DomainError):
    """The bytes claim to be a supported image but cannot be used: broken, truncated,
    or more pixels than ``MEDIA_MAX_PIXELS``."""

    type = "image"
    status = 422
    title = N_("The image cannot be used")


class StorageFull(DomainError):
    """The media disk is full (ENOSPC, or a quota): nothing was stored."""

    type = "insufficient-storage"
    status = 507
    title = N_("No room to store the image")


class StorageUnavailable(DomainError):
    """The media disk refuses writes or reads (read-only, I/O error): nothing was stored."""

    type = "unavailable"
    status = 503
    title = N_("Image storage unavailable")
    headers: ClassVar[dict[str, str]] = {"Retry-After": "30"}
