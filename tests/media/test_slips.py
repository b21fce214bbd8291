"""Packing slips: a PNG with large type, Chinese and English labels, and a QR code that
a scanner reads. With and without a CJK font installed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from media.slips import (
    CJK_FONTS,
    MIN_HEIGHT,
    QR_LEFT,
    QR_TOP,
    WIDTH,
    PackingSlip,
    SlipLine,
    find_font,
    fonts_with,
    qr_matrix,
    qr_module_px,
    render_slip,
)

SLIP = PackingSlip(
    order_number="10023",
    order_ref="SHANHUO-ORDER-10023",
    recipient="王女士 Ms Wang",
    region="浙江省 丽水市 庆元县 Qingyuan, Lishui, Zhejiang",
    lines=[
        SlipLine("庆元香菇 Qingyuan shiitake", 3, "500 g bag"),
        SlipLine("香信谷 白木耳 Xiangxingu white fungus", 2, "250 g"),
    ],
    workshop="香信谷 Xiangxingu",
    task_id=42,
)

CJK_FONT = find_font()
needs_cjk_font = pytest.mark.skipif(
    CJK_FONT is None, reason="no CJK font installed (.ci/run installs fonts-wqy-microhei)"
)


def png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def assert_qr_scans_and_matches(image: Image.Image, order_ref: str) -> None:
    # A real decoder (zxing-cpp) reads it ...
    assert [result.text for result in zxingcpp.read_barcodes(image)] == [order_ref]
    # ... and every module is where the QR standard (the qrcode package) puts it.
    matrix = qr_matrix(order_ref)
    px = qr_module_px(len(matrix))
    grey = image.convert("L")
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            centre = (QR_LEFT + x * px + px // 2, QR_TOP + y * px + px // 2)
            assert (grey.getpixel(centre) < 128) == dark, (x, y)


def glyphs_differ(font_path: str | None, a: str, b: str) -> bool:
    """With a font that lacks both characters, both are the same 'missing' box."""
    font = ImageFont.truetype(font_path, 40) if font_path else ImageFont.load_default(40)

    def draw(text: str) -> bytes:
        image = Image.new("L", (60, 60))
        ImageDraw.Draw(image).text((5, 5), text, font=font, fill=255)
        return image.tobytes()

    return draw(a) != draw(b)


@needs_cjk_font
def test_the_slip_renders_chinese_with_the_installed_cjk_font():
    assert CJK_FONT in CJK_FONTS
    assert glyphs_differ(CJK_FONT, "收", "件")
    image = png(render_slip(SLIP))
    assert image.width == WIDTH and image.height >= MIN_HEIGHT
    assert_qr_scans_and_matches(image, SLIP.order_ref)
    # large type: the order number's digits are over 50 px tall
    band = image.convert("L").crop((32, 130, 400, 230))
    top, bottom = band.point(lambda v: 255 if v < 128 else 0).getbbox()[1::2]
    assert bottom - top > 50


def test_without_a_cjk_font_the_slip_still_renders_with_a_scannable_qr_code(tmp_path):
    missing = str(tmp_path / "no-such-font.ttc")
    not_a_font = tmp_path / "broken.ttc"
    not_a_font.write_bytes(b"not a font")
    assert find_font([missing, str(not_a_font)]) is None
    image = png(render_slip(SLIP, fonts=[missing, str(not_a_font)]))
    assert image.width == WIDTH and image.height >= MIN_HEIGHT
    assert_qr_scans_and_matches(image, SLIP.order_ref)
    assert not glyphs_differ(None, "收", "件")  # the fallback shows boxes for Chinese…
    assert glyphs_differ(None, "R", "Q")  # …and real letters for the English labels


@needs_cjk_font
def test_a_configured_font_path_comes_first(tmp_path):
    assert find_font(fonts_with(None)) == CJK_FONT
    assert find_font(fonts_with(str(tmp_path / "missing.ttf"))) == CJK_FONT
    configured = tmp_path / "configured.ttc"
    configured.write_bytes(Path(CJK_FONT).read_bytes())  # a font that is not in CJK_FONTS
    assert find_font(fonts_with(str(configured))) == str(configured)


def test_a_long_order_stays_printable():
    lines = [SlipLine(f"商品 Product {n} with a rather long name", n % 5 + 1) for n in range(120)]
    slip = PackingSlip(
        order_number="9" * 40,
        order_ref="SHANHUO-ORDER-" + "9" * 40,
        recipient="名" * 80,
        region="",
        lines=lines,
    )
    image = png(render_slip(slip))
    assert image.width == WIDTH and image.height < 6000
    assert_qr_scans_and_matches(image, slip.order_ref)


def test_an_empty_order_renders():
    image = png(render_slip(PackingSlip("1", "SHANHUO-ORDER-1", "", "")))
    assert image.size == (WIDTH, MIN_HEIGHT)
