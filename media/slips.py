"""Packing slips: a PNG a villager prints and puts in the parcel. Pure: plain data in,
PNG bytes out; no database, no Flask.

Sized for a 4×6 inch thermal label at 203 dpi (812 px wide), in large type, with
Chinese labels and English beside them, and a QR code of the order reference
that the workshop's phone scans. Chinese needs a CJK font: the first installed of
``CJK_FONTS`` (Debian ``fonts-wqy-microhei`` or ``fonts-noto-cjk``) is used; without
one the slip still renders with Pillow's own scalable font, the English labels
readable and the Chinese glyphs as boxes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

#: Installed CJK fonts, tried in order.
CJK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)

WIDTH = 812  #: 4 inch at 203 dpi
MIN_HEIGHT = 1218  #: 6 inch at 203 dpi
MARGIN = 32
QR_SIZE = 280  #: the QR code's side, quiet zone included (at most; whole modules)
QR_LEFT = WIDTH - MARGIN - QR_SIZE
QR_TOP = MARGIN + 56  #: below the title line
MAX_LINES = 40  #: more lines than this are summarised, so the slip stays printable

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

FG = (0, 0, 0)
BG = (255, 255, 255)


@dataclass(frozen=True)
class SlipLine:
    name: str  #: product name as the buyer saw it
    qty: int
    unit_label: str = ""  #: e.g. "500 g bag"


@dataclass(frozen=True)
class PackingSlip:
    order_number: str  #: shown large, e.g. "10023"
    order_ref: str  #: what the QR code carries, e.g. "SHANHUO-ORDER-10023"
    recipient: str
    region: str
    lines: Sequence[SlipLine] = field(default_factory=tuple)
    workshop: str = ""  #: e.g. "香信谷 Xiangxingu"
    task_id: int | None = None


def find_font(candidates: Sequence[str | None] = CJK_FONTS) -> str | None:
    """The first of ``candidates`` that exists and loads as a font, or None."""
    for path in candidates:
        if path and os.path.isfile(path):
            try:
                ImageFont.truetype(path, 12)
            except OSError:
                continue
            return path
    return None


def fonts_with(font_path: str | None) -> tuple[str | None, ...]:
    """The fonts to try: a configured one (``SLIP_FONT_PATH``) first, then ``CJK_FONTS``."""
    return (font_path, *CJK_FONTS)


@lru_cache(maxsize=32)
def _font(path: str | None, size: int) -> Font:
    if path is not None:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def qr_matrix(order_ref: str) -> list[list[bool]]:
    """The QR code's modules, quiet zone (4 modules) included; True is dark."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=1, border=4)
    code.add_data(order_ref)
    code.make(fit=True)
    return [[bool(module) for module in row] for row in code.get_matrix()]


def qr_module_px(modules: int) -> int:
    """Pixels per module: whole pixels (a scanner needs crisp edges), at least 2."""
    return max(2, QR_SIZE // modules)


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Font) -> float:
    return draw.textlength(text, font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Font, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if _text_width(draw, text, font) <= width:
        return text
    while text and _text_width(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: float, lines: int) -> list[str]:
    """Break ``text`` into at most ``lines`` lines of ``width`` pixels (CJK has no spaces,
    so break anywhere), the last one cut with an ellipsis."""
    out: list[str] = []
    rest = text.strip()
    while rest and len(out) < lines - 1:
        cut = len(rest)
        while cut > 1 and _text_width(draw, rest[:cut], font) > width:
            cut -= 1
        space = rest.rfind(" ", 0, cut)
        if cut < len(rest) and space > cut // 2:
            cut = space
        out.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    if rest:
        out.append(_fit(draw, rest, font, width))
    return out or [""]


def _draw_qr(image: Image.Image, order_ref: str) -> None:
    matrix = qr_matrix(order_ref)
    px = qr_module_px(len(matrix))
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                left, top = QR_LEFT + x * px, QR_TOP + y * px
                draw.rectangle((left, top, left + px - 1, top + px - 1), fill=FG)


def render_slip(slip: PackingSlip, *, fonts: Sequence[str | None] | None = None) -> bytes:
    """The packing slip as PNG bytes (812 px wide, at least 1218 px tall, 1-bit friendly).

    ``fonts``: font files to try in order (default ``CJK_FONTS``); when none loads,
    Pillow's built-in scalable font is used and the slip still renders.
    """
    path = find_font(CJK_FONTS if fonts is None else fonts)
    title, label, value, big = (_font(path, s) for s in (34, 28, 44, 72))
    line_font, qty_font = _font(path, 38), _font(path, 46)
    times = "×" if path else "x"  # Pillow's own font has no ×

    lines = list(slip.lines)
    # a line takes at most two rows of text (110 px); the crop below trims the rest
    canvas_h = MIN_HEIGHT + 200 + 112 * min(len(lines), MAX_LINES)
    image = Image.new("RGB", (WIDTH, canvas_h), BG)
    draw = ImageDraw.Draw(image)
    text_w = QR_LEFT - MARGIN - 16
    full_w = WIDTH - 2 * MARGIN

    y = MARGIN
    heading = _fit(draw, "山货 Shanhuo · 装箱单 Packing slip", title, full_w)
    draw.text((MARGIN, y), heading, font=title, fill=FG)
    y += 56
    draw.text((MARGIN, y), "订单号 Order no.", font=label, fill=FG)
    y += 36
    draw.text((MARGIN, y), _fit(draw, slip.order_number, big, text_w), font=big, fill=FG)
    y += 92
    if slip.workshop or slip.task_id is not None:
        where = " · ".join(
            part
            for part in (slip.workshop, f"任务 Task {slip.task_id}" if slip.task_id else "")
            if part
        )
        draw.text((MARGIN, y), _fit(draw, where, label, text_w), font=label, fill=FG)
    _draw_qr(image, slip.order_ref)
    y = max(y + 48, QR_TOP + QR_SIZE + 24)

    for caption, text in (("收件人 Recipient", slip.recipient), ("地区 Region", slip.region)):
        draw.text((MARGIN, y), caption, font=label, fill=FG)
        y += 36
        for row in _wrap(draw, text, value, full_w, 2):
            draw.text((MARGIN, y), row, font=value, fill=FG)
            y += 54
        y += 12

    draw.line((MARGIN, y, WIDTH - MARGIN, y), fill=FG, width=4)
    y += 16
    draw.text((MARGIN, y), "商品 Item", font=label, fill=FG)
    qty_caption = "数量 Qty"
    draw.text(
        (WIDTH - MARGIN - _text_width(draw, qty_caption, label), y),
        qty_caption,
        font=label,
        fill=FG,
    )
    y += 44
    qty_w = 150
    shown = lines if len(lines) <= MAX_LINES else lines[: MAX_LINES - 1]
    for line in shown:
        name = f"{line.name} ({line.unit_label})" if line.unit_label else line.name
        qty = f"{times} {line.qty}"
        draw.text(
            (WIDTH - MARGIN - _text_width(draw, qty, qty_font), y - 4), qty, font=qty_font, fill=FG
        )
        for row in _wrap(draw, name, line_font, full_w - qty_w, 2):
            draw.text((MARGIN, y), row, font=line_font, fill=FG)
            y += 48
        y += 14
    if len(shown) < len(lines):
        more = len(lines) - len(shown)
        draw.text((MARGIN, y), f"另有 {more} 种商品 / {more} more items", font=line_font, fill=FG)
        y += 62
    draw.line((MARGIN, y, WIDTH - MARGIN, y), fill=FG, width=4)
    y += 16
    total = sum(line.qty for line in lines)
    draw.text((MARGIN, y), f"共 Total: {total} 件 units", font=value, fill=FG)
    y += 70

    height = max(MIN_HEIGHT, y + MARGIN)
    buffer = io.BytesIO()
    image.crop((0, 0, WIDTH, height)).convert("L").save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
