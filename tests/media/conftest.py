"""Image makers and upload helpers for the media tests. Every image is drawn here."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

ORIENTATION = 0x0112
GPS_IFD = 0x8825
#: Strings planted in the phone photo's metadata; none may survive anywhere.
SECRETS = [b"Family Wu farm", b"xmp-secret-farm-location", b"Phone model X9"]


def encode(image: Image.Image, format_: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_, **params)
    return buffer.getvalue()


def two_tone(width: int = 400, height: int = 300, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: shows which way an image was turned."""
    image = Image.new(mode, (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (width // 2, 0, width, height))
    return image


def phone_jpeg(width: int = 400, height: int = 300) -> bytes:
    """What a phone sends: sideways pixels with orientation 6, GPS position, XMP, ICC."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "Shanhuo Phones"  # Make
    exif[0x0110] = SECRETS[2].decode()  # Model
    exif[0x010E] = SECRETS[0].decode()  # ImageDescription
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (27.0, 37.0, 12.5), 3: "E", 4: (119.0, 3.0, 45.25), 5: 0, 6: 612.0}
    )
    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b"<rdf:Description>" + SECRETS[1] + b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(
        two_tone(width, height),
        "JPEG",
        exif=exif.tobytes(),
        xmp=xmp,
        icc_profile=icc,
        comment=SECRETS[0],
        quality=92,
    )


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width``×``height``, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def media_root(app) -> Path:
    return Path(app.config["MEDIA_ROOT"])


@pytest.fixture
def stored_files(media_root: Path) -> Callable[[], set[Path]]:
    """``stored_files()`` → every file under MEDIA_ROOT now (temporary files included)."""

    def files() -> set[Path]:
        if not media_root.exists():
            return set()
        return {p for p in media_root.rglob("*") if p.is_file()}

    return files


@pytest.fixture
def uploader(auth) -> tuple[Any, dict[str, str]]:
    return auth("streamer")


@pytest.fixture
def upload(client, uploader) -> Callable[..., Any]:
    """``upload(data, filename=, content_type=, headers=)`` → the response."""
    _, default_headers = uploader

    def send(
        data: bytes,
        filename: str = "photo.jpg",
        content_type: str = "image/jpeg",
        headers: dict[str, str] | None = None,
    ) -> Any:
        return client.post(
            "/api/v1/media",
            data={"file": (io.BytesIO(data), filename, content_type)},
            headers=default_headers if headers is None else headers,
            content_type="multipart/form-data",
        )

    return send


def swapped_rgb_profile() -> bytes:
    """A minimal ICC v2 RGB profile whose red and blue primaries are swapped.

    Pixels (255, 0, 0) tagged with it *mean* sRGB blue: after conversion to sRGB they
    must come out blue, which shows that the profile was applied, not ignored.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + s15(x) + s15(y) + s15(z)

    gamma = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0233) + b"\x00\x00"
    tags = [
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.1431, 0.0606, 0.7141)),  # sRGB's blue primary (D50)
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.4361, 0.2225, 0.0139)),  # sRGB's red primary (D50)
        (b"rTRC", gamma),
        (b"gTRC", gamma),
        (b"bTRC", gamma),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\x00" * (-len(body) % 4)
    body = struct.pack(">I", len(tags)) + table + data
    header = (
        struct.pack(">I", 128 + len(body))
        + b"\x00\x00\x00\x00"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\x00" * 12
        + b"acsp"
        + b"\x00" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\x00" * 48
    )
    assert len(header) == 128
    return header + body
