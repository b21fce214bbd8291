"""POST /api/v1/media and GET /media/{key}: what is accepted, what is refused, what is stored."""

from __future__ import annotations

import io
import random
import threading

import pytest
from PIL import Image
from sqlalchemy import func, select

from media import service
from media.models import Media, MediaRendition
from media.storage import LocalStorage
from shop.db import db
from tests.media.conftest import (
    SECRETS,
    encode,
    phone_jpeg,
    png_header,
    swapped_rgb_profile,
    two_tone,
)

PROBLEM = "application/problem+json"


def fetch(client, url: str) -> tuple[Image.Image, bytes, object]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_data()
    return Image.open(io.BytesIO(data)), data, response


def assert_no_metadata(image: Image.Image, data: bytes) -> None:
    for secret in SECRETS:
        assert secret not in data
    assert b"Exif\x00\x00" not in data
    assert b"http://ns.adobe.com/xap" not in data and b"xmpmeta" not in data
    assert b"ICC_PROFILE" not in data
    assert len(image.getexif()) == 0
    assert not {"exif", "xmp", "icc_profile", "comment", "XML:com.adobe.xmp"} & set(image.info)


def test_a_phone_photo_is_stored_upright_without_exif_or_gps(client, upload, media_root):
    response = upload(phone_jpeg(400, 300))
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    # Orientation 6: the sensor's 400×300 pixels are a 300×400 portrait.
    assert (body["width"], body["height"], body["content_type"]) == (300, 400, "image/jpeg")
    assert set(body["renditions"]) == {"thumb", "medium"}

    original, data, served = fetch(client, body["url"])
    assert original.format == "JPEG" and original.size == (300, 400)
    assert_no_metadata(original, data)
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert served.mimetype == "image/jpeg"

    thumb, thumb_data, served = fetch(client, body["renditions"]["thumb"])
    assert served.mimetype == "image/webp" and thumb.format == "WEBP"
    assert thumb.size == (240, 320)  # longest side 320
    assert_no_metadata(thumb, thumb_data)
    rgb = thumb.convert("RGB")
    top, bottom = rgb.getpixel((120, 20)), rgb.getpixel((120, 300))
    assert top[0] > 150 > top[2], "the red half must be on top once upright"
    assert bottom[2] > 150 > bottom[0]

    medium, medium_data, _ = fetch(client, body["renditions"]["medium"])
    assert medium.size == (300, 400)  # never upscaled to 1024
    assert_no_metadata(medium, medium_data)

    # Nothing on disk carries the metadata either.
    stored = [path for path in media_root.rglob("*") if path.is_file()]
    assert len(stored) >= 3  # the original and its two renditions
    for path in stored:
        content = path.read_bytes()
        assert not any(secret in content for secret in SECRETS), path


def test_large_photos_get_renditions_of_320_and_1024_pixels(client, upload):
    body = upload(encode(two_tone(2400, 1600), "PNG"), "big.png", "image/png").get_json()
    assert (body["width"], body["height"], body["content_type"]) == (2400, 1600, "image/png")
    assert fetch(client, body["renditions"]["thumb"])[0].size == (320, 213)
    assert fetch(client, body["renditions"]["medium"])[0].size == (1024, 683)


@pytest.mark.parametrize(
    ("format_", "mode", "content_type"),
    [
        ("PNG", "RGBA", "image/png"),
        ("PNG", "L", "image/png"),
        ("PNG", "P", "image/png"),
        ("WEBP", "RGB", "image/webp"),
        ("WEBP", "RGBA", "image/webp"),
        ("JPEG", "L", "image/jpeg"),
        ("JPEG", "CMYK", "image/jpeg"),
    ],
)
def test_jpeg_png_and_webp_in_their_usual_modes_are_accepted(
    client, upload, format_, mode, content_type
):
    image = two_tone(64, 48).convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.new("L", (64, 48), 90))  # see-through: the alpha must survive
    response = upload(encode(image, format_), "x.bin", "application/octet-stream")
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["content_type"], body["width"], body["height"]) == (content_type, 64, 48)
    thumb = fetch(client, body["renditions"]["thumb"])[0]
    assert thumb.size == (64, 48)
    if mode == "RGBA":
        assert abs(thumb.getpixel((10, 10))[3] - 90) <= 2
    else:
        assert thumb.mode == "RGB"


def test_a_colour_profile_is_converted_to_srgb_then_dropped(client, upload):
    red_pixels = Image.new("RGB", (32, 32), (255, 0, 0))
    tagged = encode(red_pixels, "PNG", icc_profile=swapped_rgb_profile())
    body = upload(tagged, "tagged.png").get_json()
    original, data, _ = fetch(client, body["url"])
    # In that profile "red" pixels are blue: converted, they are blue in sRGB.
    assert original.convert("RGB").getpixel((16, 16)) == (0, 0, 255)
    assert_no_metadata(original, data)
    assert b"rXYZ" not in data


def test_an_unusable_colour_profile_is_dropped_and_the_image_kept(client, upload):
    body = upload(encode(two_tone(20, 20), "PNG", icc_profile=b"not a profile" * 10)).get_json()
    original, data, _ = fetch(client, body["url"])
    assert original.getpixel((2, 2))[:3] == (200, 30, 30)
    assert_no_metadata(original, data)


def test_a_cmyk_jpeg_becomes_rgb(client, upload):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red ink
    original, _, _ = fetch(client, upload(encode(cmyk, "JPEG")).get_json()["url"])
    red = original.getpixel((16, 16))
    assert original.mode == "RGB" and red[0] > 200 and red[1] < 60 and red[2] < 60


def test_a_jpeg_named_png_is_accepted_as_a_jpeg(upload):
    """The format comes from the bytes: a polyglot name or type changes nothing."""
    response = upload(encode(two_tone(40, 30), "JPEG"), "innocent.png", "image/png")
    assert response.status_code == 201
    assert response.get_json()["content_type"] == "image/jpeg"


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
)


def truncated_jpeg() -> bytes:
    data = encode(two_tone(640, 480), "JPEG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("random bytes", random.Random(6).randbytes(4096), 415),
        ("empty file", b"", 415),
        ("SVG", SVG, 415),
        ("GIF", encode(two_tone(20, 20).convert("P"), "GIF"), 415),
        ("BMP", encode(two_tone(20, 20), "BMP"), 415),
        ("TIFF", encode(two_tone(20, 20), "TIFF"), 415),
        ("truncated JPEG", truncated_jpeg(), 422),
        ("PNG header claiming 40000×40000", png_header(40_000, 40_000), 422),
        ("PNG header claiming 8000×6000 (48 Mpx)", png_header(8000, 6000), 422),
        ("PNG header without pixel data", png_header(100, 100), 422),
        ("PNG with a bad CRC", encode(two_tone(20, 20), "PNG")[:-30] + b"\x00" * 30, 422),
    ],
)
def test_anything_but_a_sound_jpeg_png_or_webp_is_refused_and_nothing_is_written(
    upload, stored_files, name, data, status
):
    before = stored_files()
    count = db.session.scalar(select(func.count()).select_from(Media))
    response = upload(data, "photo.jpg", "image/jpeg")
    assert response.status_code == status, (name, response.get_data(as_text=True))
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "image" and problem["status"] == status and problem["detail"]
    assert stored_files() == before
    assert db.session.scalar(select(func.count()).select_from(Media)) == count


def test_the_pixel_limit_is_checked_before_decoding(upload):
    # The header claims 48 Mpx and there is no pixel data at all: only a check made
    # before decoding can tell this is too large rather than broken.
    problem = upload(png_header(8000, 6000)).get_json()
    assert "limit" in problem["detail"] and problem["max_pixels"] == 40_000_000


def test_the_pixel_limit_is_a_setting(app, upload):
    image = encode(two_tone(100, 100), "PNG")
    saved = app.config["MEDIA_MAX_PIXELS"]
    app.config["MEDIA_MAX_PIXELS"] = 9_999
    try:
        assert upload(image, "a.png").status_code == 422
    finally:
        app.config["MEDIA_MAX_PIXELS"] = saved
    assert upload(image, "a.png").status_code == 201


def test_a_forty_megabyte_body_is_413_problem_json(client, uploader, stored_files):
    before = stored_files()
    big = encode(two_tone(20, 20), "PNG") + b"\x00" * (40 * 1024 * 1024)
    # The multipart body is built here: werkzeug's test client would spool it to a
    # temporary file it never closes (a ResourceWarning, an error in this suite).
    boundary = "shanhuo-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="huge.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/api/v1/media",
        data=body,
        headers=uploader[1],
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 413
    assert response.mimetype == PROBLEM
    assert response.get_json()["type"] == "too-large"
    assert stored_files() == before


def test_a_request_without_a_file_is_a_validation_problem(client, uploader):
    _, headers = uploader
    response = client.post("/api/v1/media", data={"file": "not a file"}, headers=headers)
    assert response.status_code == 422
    assert "file" in response.get_json()["errors"]
    response = client.post("/api/v1/media", json={"file": "x"}, headers=headers)
    assert response.status_code == 422


def test_the_same_image_twice_is_one_record(upload):
    image = phone_jpeg(120, 90)
    first = upload(image)
    second = upload(image, "again.jpg")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json() == second.get_json()
    sha = first.get_json()["sha256"]
    assert db.session.scalar(select(func.count()).where(Media.sha256 == sha)) == 1


def test_the_key_is_the_sha256_of_the_stored_original(client, upload):
    import hashlib

    body = upload(encode(two_tone(50, 50), "WEBP"), "a.webp").get_json()
    _, data, _ = fetch(client, body["url"])
    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    assert body["url"].endswith("/" + body["sha256"])
    for url in body["renditions"].values():
        _, rendition, _ = fetch(client, url)
        assert url.endswith("/" + hashlib.sha256(rendition).hexdigest())


@pytest.mark.parametrize("role", ["buyer", "villager", "farmer"])
def test_buyers_villagers_and_farmers_may_not_upload(auth, upload, stored_files, role):
    _, headers = auth(role)
    before = stored_files()
    response = upload(encode(two_tone(30, 30), "PNG"), headers=headers)
    assert response.status_code == 403
    assert response.get_json()["type"] == "forbidden"
    assert stored_files() == before


def test_uploading_needs_a_signed_in_user(upload):
    assert upload(encode(two_tone(30, 30), "PNG"), headers={}).status_code == 401


def test_an_admin_may_upload(auth, upload):
    _, headers = auth("admin")
    assert upload(encode(two_tone(31, 30), "PNG"), headers=headers).status_code == 201


@pytest.mark.parametrize(
    "path",
    [
        "/media/../../etc/passwd",
        "/media/..%2F..%2Fetc%2Fpasswd",
        "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/media/..",
        "/media/%00",
        "/media/" + "A" * 64,  # upper-case hex is not a key
        "/media/" + "0" * 63,
        "/media/" + "0" * 64,  # a well-formed key that is not stored
        "/media/" + "0" * 64 + "/../../etc/passwd",
        "/media/etc%2Fpasswd",
    ],
)
def test_path_tricks_and_unknown_keys_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert b"root:" not in response.get_data()


def test_a_file_in_storage_without_a_record_is_not_served(client, app):
    data = encode(two_tone(10, 10), "PNG")
    key = service.sha256_hex(data)
    LocalStorage(app.config["MEDIA_ROOT"]).put(key, data)
    assert client.get(f"/media/{key}").status_code == 404


def test_the_openapi_document_describes_the_upload(client):
    spec = client.get("/api/openapi.json").get_json()
    post = spec["paths"]["/api/v1/media"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "201", "413", "415", "422", "403"} <= set(post["responses"])


@pytest.mark.postgres
def test_two_racing_uploads_of_the_same_image_make_one_record(committing):
    app = committing
    storage = LocalStorage(app.config["MEDIA_ROOT"])
    image = encode(two_tone(77, 55), "PNG")
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        with app.app_context():
            barrier.wait()
            try:
                media, created = service.upload(db.session, storage, image)
                db.session.commit()
                results.append((media.id, created))
            except BaseException as error:  # reported below
                db.session.rollback()
                errors.append(error)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({media_id for media_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Media)) == 1
        assert db.session.scalar(select(func.count()).select_from(MediaRendition)) == 2
