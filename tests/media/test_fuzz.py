"""Hostile uploads: bytes mutated from valid images never make a 500, and a refused
upload never leaves a file behind."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.media.conftest import encode, phone_jpeg, two_tone

SEEDS = [
    phone_jpeg(48, 36),
    encode(two_tone(40, 30), "PNG"),
    encode(two_tone(40, 30).convert("P"), "PNG"),
    encode(Image.new("RGBA", (30, 40), (10, 200, 10, 120)), "PNG"),
    encode(two_tone(40, 30), "WEBP"),
    encode(two_tone(40, 30), "WEBP", lossless=True),
    encode(two_tone(40, 30), "JPEG", progressive=True),
]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "big-number"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        else:  # header fields (sizes, lengths) set to extremes
            data[at : at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff"]))
    return bytes(data)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=mutated_images(), filename=st.sampled_from(["a.jpg", "a.png", "a.webp", "a"]))
def test_mutated_images_never_fail_the_server_nor_leave_files(upload, stored_files, data, filename):
    before = stored_files()
    response = upload(data, filename, "image/jpeg")
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.status_code in (415, 422)
        assert response.get_json()["type"] == "image"
        assert stored_files() == before
    else:
        assert response.status_code in (200, 201)
        body = response.get_json()
        assert body["width"] * body["height"] <= 40_000_000
