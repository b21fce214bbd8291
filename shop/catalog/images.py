"""Product images: which stored media a product shows, in order.

The images themselves (validation, storage, renditions) belong to ``media``;
the catalog keeps only the link and asks ``media.service`` for rendition URLs.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import current_app
from PIL import Image, ImageDraw
from sqlalchemy import ForeignKey, Index, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from media import service as media_service
from media.storage import storage_from_config
from shop.accounts.models import Principal
from shop.catalog.models import Product
from shop.catalog.service import get_product, product_to_change
from shop.db import Base, DbSession, utcnow
from shop.errors import NotFound, ValidationFailed
from shop.i18n import N_, _l


class ProductImage(Base):
    __tablename__ = "product_images"
    __table_args__ = (
        UniqueConstraint("product_id", "media_id"),
        Index("ix_product_images_product_id_position", "product_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id"))
    position: Mapped[int]  #: display order, 0 first
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def attach_image(session: DbSession, product_id: int, media_id: int) -> ProductImage:
    """Show a stored image on a product, after its other images. Attaching the same image
    again changes nothing. Raises NotFound (product), ValidationFailed (unknown media)."""
    get_product(session, product_id)
    try:
        media_service.get_media(session, media_id)
    except NotFound:
        raise ValidationFailed(
            _l("No media %(media_id)s; upload it first.", media_id=media_id),
            {"media_id": [N_("Unknown media.")]},
        ) from None
    existing = session.scalar(
        select(ProductImage).where(
            ProductImage.product_id == product_id, ProductImage.media_id == media_id
        )
    )
    if existing is not None:
        return existing
    last = session.scalar(
        select(func.max(ProductImage.position)).where(ProductImage.product_id == product_id)
    )
    image = ProductImage(
        product_id=product_id, media_id=media_id, position=0 if last is None else last + 1
    )
    session.add(image)
    session.flush()  # a racing duplicate fails here on the UNIQUE pair
    return image


def attach_image_by(
    session: DbSession, user: Principal, product_id: int, media_id: int
) -> ProductImage:
    """``attach_image`` as ``user``: an admin, or the streamer who owns the product.
    Raises NotFound, Forbidden, ValidationFailed."""
    product_to_change(session, product_id, user)
    return attach_image(session, product_id, media_id)


def images_of(
    session: DbSession, product_ids: Iterable[int], url_base: str
) -> dict[int, list[dict[str, Any]]]:
    """``{product_id: [{media_id, renditions: {thumb, medium}}]}``, in display order."""
    ids = set(product_ids)
    result: dict[int, list[dict[str, Any]]] = {product_id: [] for product_id in ids}
    if not ids:
        return result
    links = session.execute(
        select(ProductImage.product_id, ProductImage.media_id)
        .where(ProductImage.product_id.in_(ids))
        .order_by(ProductImage.product_id, ProductImage.position, ProductImage.id)
    ).all()
    urls = media_service.renditions_by_media(session, (m for _, m in links), url_base)
    for product_id, media_id in links:
        result[product_id].append({"media_id": media_id, "renditions": urls[media_id]})
    return result


def list_images(session: DbSession, product_id: int, url_base: str) -> list[dict[str, Any]]:
    """A product's images with their rendition URLs, in display order."""
    return images_of(session, [product_id], url_base)[product_id]


# --- demo data: drawn here, so ``make run`` downloads nothing -----------------------

#: sku → (background, colour of the produce, shape)
DEMO_PICTURES: dict[str, tuple[str, str, str]] = {
    "QG-SHIITAKE-500": ("#f3e9d8", "#7b4a2a", "mushroom"),
    "QG-SHIITAKE-FRESH": ("#f1ead9", "#8a5532", "mushroom"),
    "QG-SHIITAKE-DRY-250": ("#efe4cf", "#5e3a22", "mushroom"),
    "XXG-WHITE-FUNGUS-250": ("#e8eef2", "#f7f1dc", "fungus"),
    "ZK-POMELO-5KG": ("#eef5e4", "#e9c545", "pomelo"),
}
#: by category, for demo products whose sku is not listed above
DEMO_BY_CATEGORY: dict[str, tuple[str, str, str]] = {
    "mushroom": ("#f3e9d8", "#7b4a2a", "mushroom"),
    "fungus": ("#e8eef2", "#f7f1dc", "fungus"),
    "pomelo": ("#eef5e4", "#e9c545", "pomelo"),
    "other": ("#eeeeee", "#8a9a5b", "pomelo"),
}


def draw_demo_picture(background: str, colour: str, shape: str, size: int = 800) -> bytes:
    """A simple drawn product picture (PNG): a mushroom, a fungus or a pomelo."""
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    c = size // 2
    if shape == "mushroom":
        draw.rounded_rectangle((c - 70, c - 70, c + 70, c + 260), radius=50, fill="#efe2c6")
        draw.pieslice((c - 300, c - 260, c + 300, c + 180), 180, 360, fill=colour)
        for dx, dy in ((-150, -130), (40, -170), (170, -90), (-40, -60)):
            draw.ellipse((c + dx - 28, c + dy - 18, c + dx + 28, c + dy + 18), fill="#d8b98f")
    elif shape == "fungus":
        for i in range(9):
            angle = i * 2 * math.pi / 9
            x, y = c + int(150 * math.cos(angle)), c + int(150 * math.sin(angle))
            draw.ellipse((x - 170, y - 130, x + 170, y + 130), fill=colour, outline="#d9cfa8")
    else:
        draw.ellipse((c - 300, c - 280, c + 300, c + 300), fill=colour, outline="#b8952a", width=8)
        draw.polygon([(c, c - 280), (c + 120, c - 360), (c + 40, c - 260)], fill="#5b8c3a")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def seed_demo(session: DbSession) -> list[str]:
    """Give each demo product without images a drawn picture (idempotent)."""
    storage = storage_from_config(current_app.config)
    with_images = set(session.scalars(select(ProductImage.product_id)))
    lines = []
    for product in session.scalars(select(Product).order_by(Product.id)):
        if product.id in with_images:
            continue
        picture = DEMO_PICTURES.get(product.sku) or DEMO_BY_CATEGORY.get(product.category)
        if picture is None:
            continue
        media, _ = media_service.upload(session, storage, draw_demo_picture(*picture))
        attach_image(session, product.id, media.id)
        lines.append(f"    image: {product.sku} ← media {media.id}")
    return lines
