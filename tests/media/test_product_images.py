"""Product images: attach uploaded media to a product; a product lists their renditions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shop.catalog.images import ProductImage, seed_demo
from shop.db import db
from tests.media.conftest import encode, two_tone


@pytest.fixture
def uploaded(upload):
    def make(width: int = 640, height: int = 480) -> dict:
        response = upload(encode(two_tone(width, height), "PNG"), "p.png")
        assert response.status_code == 201
        return response.get_json()

    return make


def test_a_streamer_attaches_images_and_the_product_lists_their_renditions(
    client, make_product, uploaded, uploader
):
    streamer, headers = uploader
    product = make_product(owner_id=streamer.id)
    first, second = uploaded(640, 480), uploaded(480, 640)
    url = f"/api/v1/products/{product.id}/images"
    response = client.post(url, json={"media_id": first["id"]}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["images"] == [
        {"media_id": first["id"], "renditions": first["renditions"]}
    ]
    client.post(url, json={"media_id": second["id"]}, headers=headers)
    expected = [
        {"media_id": first["id"], "renditions": first["renditions"]},
        {"media_id": second["id"], "renditions": second["renditions"]},
    ]
    assert client.get(f"/api/v1/products/{product.id}").get_json()["images"] == expected
    listed = client.get("/api/v1/products?limit=200").get_json()["items"]
    assert next(p for p in listed if p["id"] == product.id)["images"] == expected
    # the URLs serve the renditions
    thumb = client.get(first["renditions"]["thumb"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp"


def test_attaching_the_same_image_twice_keeps_one_link(client, make_product, uploaded, uploader):
    streamer, headers = uploader
    product = make_product(owner_id=streamer.id)
    media = uploaded()
    url = f"/api/v1/products/{product.id}/images"
    for _ in range(2):
        assert client.post(url, json={"media_id": media["id"]}, headers=headers).status_code == 200
    assert len(client.get(f"/api/v1/products/{product.id}").get_json()["images"]) == 1
    count = select(func.count()).where(ProductImage.product_id == product.id)
    assert db.session.scalar(count) == 1


def test_unknown_media_is_422_and_unknown_product_404(client, make_product, uploaded, uploader):
    streamer, headers = uploader
    product = make_product(owner_id=streamer.id)
    response = client.post(
        f"/api/v1/products/{product.id}/images", json={"media_id": 2**31 - 1}, headers=headers
    )
    assert response.status_code == 422
    assert "media_id" in response.get_json()["errors"]
    media = uploaded()
    missing = client.post(
        "/api/v1/products/999999/images", json={"media_id": media["id"]}, headers=headers
    )
    assert missing.status_code == 404
    for bad in ({"media_id": "1"}, {"media_id": 1.5}, {}, {"media_id": 0}):
        refused = client.post(f"/api/v1/products/{product.id}/images", json=bad, headers=headers)
        assert refused.status_code == 422, bad


@pytest.mark.parametrize("role", ["buyer", "villager", "farmer"])
def test_only_admins_and_streamers_attach_images(client, auth, make_product, uploaded, role):
    product = make_product()
    media = uploaded()
    _, headers = auth(role)
    response = client.post(
        f"/api/v1/products/{product.id}/images", json={"media_id": media["id"]}, headers=headers
    )
    assert response.status_code == 403
    assert client.get(f"/api/v1/products/{product.id}").get_json()["images"] == []


def test_the_demo_seeder_draws_a_picture_for_each_demo_product_once(client, make_product):
    shiitake = make_product(sku="QG-SHIITAKE-500", category="mushroom")
    pomelo = make_product(sku="ZK-POMELO-X", category="pomelo", name="甜桔柚 Sweet pomelo")
    lines = seed_demo(db.session)
    db.session.commit()
    assert any("QG-SHIITAKE-500" in line for line in lines)
    for product in (shiitake, pomelo):
        images = client.get(f"/api/v1/products/{product.id}").get_json()["images"]
        assert len(images) == 1
        assert client.get(images[0]["renditions"]["thumb"]).status_code == 200
    assert seed_demo(db.session) == []  # idempotent
