"""Stored images: the cleaned original and its renditions, both content-addressed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, utcnow

CONTENT_TYPES = "'image/jpeg', 'image/png', 'image/webp'"


class Media(Base):
    """An uploaded image, as stored: upright, sRGB, without metadata."""

    __tablename__ = "media"
    __table_args__ = (
        CheckConstraint("width > 0 AND height > 0", name="dimensions_positive"),
        CheckConstraint(f"content_type IN ({CONTENT_TYPES})", name="content_type_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 (hex) of the stored original: its storage key and its identity
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int]  #: of the upright original
    height: Mapped[int]
    byte_size: Mapped[int]
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    renditions: Mapped[list[MediaRendition]] = relationship(
        back_populates="media", order_by="MediaRendition.name", cascade="all, delete-orphan"
    )


class MediaRendition(Base):
    """A resized WebP of a media original. Its key is the SHA-256 of its own bytes, so a
    rebuilt rendition gets a new URL and the year-long cache headers stay truthful."""

    __tablename__ = "media_renditions"
    __table_args__ = (UniqueConstraint("media_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(20))  #: thumb, medium
    key: Mapped[str] = mapped_column(String(64), index=True)  #: SHA-256 (hex) of the bytes
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int]
    height: Mapped[int]
    byte_size: Mapped[int]

    media: Mapped[Media] = relationship(back_populates="renditions")
