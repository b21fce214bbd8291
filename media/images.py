"""The image pipeline, pure Pillow: bytes in, clean bytes out. No database, no Flask.

Uploads come from phones and may be hostile. In order:

1. the format is read from the bytes (only the JPEG, PNG and WebP decoders are
   tried), never from a file name or a Content-Type;
2. the pixel count is checked from the header, before anything is decoded, so a
   small file that expands to gigabytes (a decompression bomb) is refused cheaply;
3. ``verify()``, then a fresh open and a full ``load()``: a truncated or corrupt
   file fails here, before anything is stored;
4. the EXIF orientation is applied (everything stored is upright), the colour
   profile is converted to sRGB, and the pixels are copied into a new image that
   carries no metadata at all (EXIF, GPS, XMP, ICC, comments) before encoding.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from media.errors import BadImage, UnsupportedImage
from shop.i18n import Words, _l

log = logging.getLogger(__name__)

#: Pillow format name → the Content-Type we store and serve it with.
ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

#: Renditions: name → longest side in pixels. Changing these is what
#: ``media.render`` / ``shanhuo media rebuild`` are for.
RENDITION_SIZES: dict[str, int] = {"thumb": 320, "medium": 1024}

JPEG_QUALITY = 90
WEBP_QUALITY = 82

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

# Signatures of formats people commonly try, only to name them in the refusal.
_KNOWN_OTHERS = [
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"%PDF", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
]


@dataclass(frozen=True)
class CleanImage:
    """An upload after the pipeline: upright, sRGB, no metadata, re-encoded."""

    image: Image.Image  #: the decoded, upright pixels (RGB or RGBA)
    data: bytes  #: the encoded original as stored
    format: str  #: JPEG, PNG or WEBP: the format the bytes were in
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Encoded:
    data: bytes
    width: int
    height: int
    content_type: str


def _what_is_it(data: bytes) -> Words:
    head = data[:512].lstrip()
    for signature, name in _KNOWN_OTHERS:
        if data.startswith(signature):
            return _l("a %(name)s image", name=name)
    if head.startswith((b"<?xml", b"<svg", b"<!DOCTYPE", b"<html")):
        return _l("an SVG or other markup")
    return _l("not a JPEG, PNG or WebP image")


def _open(data: bytes) -> Image.Image:
    """Read the header only (Pillow decodes lazily)."""
    if not data:
        raise UnsupportedImage(_l("The file is empty."))
    try:
        return Image.open(io.BytesIO(data), formats=list(ACCEPTED))
    except UnidentifiedImageError:
        raise UnsupportedImage(
            _l("The file is %(kind)s; send a JPEG, PNG or WebP image.", kind=_what_is_it(data))
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(_l("The image has too many pixels.")) from None
    except Exception as error:  # hostile headers make Pillow raise many kinds of errors
        log.info("refused an image header: %r", error)
        raise BadImage(_l("The image header is broken.")) from None


def decode(data: bytes, *, max_pixels: int) -> tuple[Image.Image, str]:
    """Fully decode ``data``; returns the loaded image and its format.

    Raises UnsupportedImage (415) for anything but JPEG/PNG/WebP, BadImage (422)
    for a broken image or one with more than ``max_pixels`` pixels.
    """
    probe = _open(data)
    width, height = probe.size
    if width < 1 or height < 1:
        raise BadImage(_l("The image has no pixels."))
    if width * height > max_pixels:
        raise BadImage(
            _l(
                "The image is %(width)s×%(height)s pixels; the limit is %(max_pixels)s pixels.",
                width=width,
                height=height,
                max_pixels=format(max_pixels, ","),
            ),
            width=width,
            height=height,
            max_pixels=max_pixels,
        )
    format_ = probe.format or ""
    try:
        probe.verify()
        image = Image.open(io.BytesIO(data), formats=[format_])
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(_l("The image has too many pixels.")) from None
    except Exception as error:  # truncated or corrupt data: OSError, SyntaxError, ValueError…
        log.info("refused a broken %s: %r", format_, error)
        raise BadImage(
            _l("The %(format_)s image is broken or truncated.", format_=format_)
        ) from None
    return image, format_


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB or RGBA pixels in sRGB; the embedded ICC profile (if any) is applied, then gone."""
    icc = image.info.get("icc_profile")
    alpha = None
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    ):
        image = image.convert("RGBA") if image.mode not in ("RGBA", "LA") else image
        alpha = image.getchannel("A")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grey: scale to 8 bits rather than let conversion clip it to white
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode in ("L", "LA", "1"):
        base = image.convert("L")
    elif image.mode == "CMYK":
        base = image
    else:
        base = image.convert("RGB")
    rgb: Image.Image | None = None
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(base, profile, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
            # A profile that does not fit the pixels or does not parse: the colours
            # stay as they are; the profile is dropped with the rest of the metadata.
            log.info("ignored an unusable ICC profile: %r", error)
    if rgb is None:
        rgb = base if base.mode == "RGB" and base is not image else base.convert("RGB")
    if alpha is not None:
        rgb.putalpha(alpha)
    return rgb


def _bare(image: Image.Image) -> Image.Image:
    """The same pixels in a new image object: no ``info``, no EXIF, nothing carried over."""
    bare = Image.new(image.mode, image.size)
    bare.paste(image)
    return bare


def _encode(image: Image.Image, format_: str) -> bytes:
    buffer = io.BytesIO()
    if format_ == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif format_ == "PNG":
        image.save(buffer, "PNG", optimize=True)
    else:
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4)
    return buffer.getvalue()


def clean(data: bytes, *, max_pixels: int) -> CleanImage:
    """Decode, make upright, convert to sRGB and re-encode without metadata.

    Raises UnsupportedImage or BadImage; nothing here touches storage.
    """
    image, format_ = decode(data, max_pixels=max_pixels)
    try:
        ImageOps.exif_transpose(image, in_place=True)  # in place: one copy fewer of 40 Mpx
        pixels = _to_srgb(image)
    except Exception as error:  # broken EXIF or pixel data Pillow cannot convert
        log.info("refused an image while normalising it: %r", error)
        raise BadImage(
            _l("The %(format_)s image cannot be read (broken metadata or pixels).", format_=format_)
        ) from None
    del image  # let the decoded pixels go before the next copy
    pixels = _bare(pixels)
    if format_ == "JPEG" and pixels.mode != "RGB":
        pixels = pixels.convert("RGB")
    return CleanImage(
        image=pixels,
        data=_encode(pixels, format_),
        format=format_,
        content_type=ACCEPTED[format_],
        width=pixels.width,
        height=pixels.height,
    )


def rendition(image: Image.Image, longest_side: int) -> Encoded:
    """A WebP whose longest side is ``longest_side`` pixels, never larger than the source."""
    copy = _bare(image)
    copy.thumbnail((longest_side, longest_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4)
    return Encoded(buffer.getvalue(), copy.width, copy.height, "image/webp")


def open_stored(data: bytes) -> Image.Image:
    """Decode an original we stored ourselves (already clean), for rebuilding renditions."""
    image = Image.open(io.BytesIO(data), formats=list(ACCEPTED))
    image.load()
    return image
