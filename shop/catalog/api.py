"""Catalog endpoints: products, stock adjustments."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from shop.accounts.models import Role
from shop.api import Blueprint, ListQuery
from shop.auth import current_user, public, requires
from shop.catalog import images, service
from shop.catalog.models import Product
from shop.catalog.schemas import (
    ImageIn,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    StockIn,
)
from shop.db import db
from shop.pagination import paginate

blp = Blueprint("catalog", __name__, url_prefix="/api/v1", description="Products and stock")


def _media_url_base() -> str:
    return str(current_app.config["MEDIA_URL_BASE"])


def product_json(
    product: Product, product_images: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A product as the API shows it, with its images' renditions.

    ``product_images`` (from ``images.images_of``) saves a query per product in lists.
    """
    if product_images is None:
        product_images = images.list_images(db.session, product.id, _media_url_base())
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "category": product.category,
        "unit_label": product.unit_label,
        "unit_weight_g": product.unit_weight_g,
        "price_fen": product.price_fen,
        "stock": product.stock,
        "packing_rate_fen": product.packing_rate_fen,
        "owner_id": product.owner_id,
        "images": product_images,
    }


@blp.route("/products", methods=["POST"])
@requires(Role.ADMIN, Role.STREAMER)
@blp.arguments(ProductIn)
@blp.response(201, ProductOut)
@blp.alt_response(409, response="CONFLICT")
def create_product(data: dict[str, Any]) -> Any:
    """Add a product to the catalog: a streamer's own, or (by an admin) a house product.
    Only an admin sets `packing_rate_fen`, a wage; without it the product takes
    `DEFAULT_PACKING_RATE_FEN`."""
    product = service.create_product_by(
        db.session,
        current_user(),
        data,
        default_packing_rate_fen=current_app.config["DEFAULT_PACKING_RATE_FEN"],
    )
    db.session.commit()
    return product_json(product)


@blp.route("/products", methods=["GET"])
@public
@blp.arguments(ListQuery, location="query")
@blp.response(200, ProductPage)
def list_products(query: dict[str, Any]) -> Any:
    """Every product, oldest first."""
    page = paginate(db.session, select(Product), Product.id, **query)
    shown = images.images_of(db.session, [p.id for p in page["items"]], _media_url_base())
    return {**page, "items": [product_json(p, shown[p.id]) for p in page["items"]]}


@blp.route("/products/<int:product_id>", methods=["GET"])
@public
@blp.response(200, ProductOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_product(product_id: int) -> Any:
    """One product."""
    return product_json(service.get_product(db.session, product_id))


@blp.route("/products/<int:product_id>", methods=["PATCH"])
@requires(Role.ADMIN, Role.STREAMER)
@blp.arguments(ProductPatch)
@blp.response(200, ProductOut)
@blp.alt_response(404, response="NOT_FOUND")
def patch_product(changes: dict[str, Any], product_id: int) -> Any:
    """Change a product's name or price (admins and the owning streamer), or its packing
    rate (admins only)."""
    product = service.update_product(db.session, product_id, changes, by=current_user())
    db.session.commit()
    return product_json(product)


@blp.route("/products/<int:product_id>/stock", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(StockIn)
@blp.response(200, ProductOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="out-of-stock: would go below zero")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="validation: the lot")
def adjust_stock(data: dict[str, Any], product_id: int) -> Any:
    """Add or remove stock by hand, with a reason kept in the history. With ``lot_code``
    (a delivery's lot), the units received are counted on the lot: parcels packed from
    them are traced to it, first in, first out."""
    product = service.adjust_stock(
        db.session,
        product_id,
        delta=data["delta"],
        reason=data["reason"],
        actor_id=current_user().id,
        lot_code=data["lot_code"],
    )
    db.session.commit()
    return product_json(product)


@blp.route("/products/<int:product_id>/images", methods=["POST"])
@requires(Role.ADMIN, Role.STREAMER)
@blp.arguments(ImageIn)
@blp.response(200, ProductOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="unknown media_id")
def attach_image(data: dict[str, Any], product_id: int) -> Any:
    """Show an uploaded image (``POST /api/v1/media``) on a product, after its others
    (admins and the owning streamer)."""
    images.attach_image_by(db.session, current_user(), product_id, data["media_id"])
    db.session.commit()
    return product_json(service.get_product(db.session, product_id))
