"""A packing task's slip: the task's order and lines drawn by ``media.slips``."""

from __future__ import annotations

from fulfillment.models import PackingTask, Workshop
from media import slips
from shop.db import DbSession
from shop.errors import Conflict
from shop.i18n import _l
from shop.orders import service as orders


def trace_url(base_url: str, code: str) -> str:
    """The parcel's public trace page, which its slip's QR code opens."""
    return f"{base_url}/t/{code}"


def task_slip_png(
    session: DbSession, task: PackingTask, *, font_path: str | None, base_url: str
) -> bytes:
    """The PNG slip a villager prints and puts in the parcel: order number, a QR code of
    the parcel's trace page, recipient, region, lines. ``font_path`` (``SLIP_FONT_PATH``)
    is tried before the installed CJK fonts. Raises Conflict for a batch."""
    slip = task_slip(session, task, base_url=base_url)
    return slips.render_slip(slip, fonts=(font_path, *slips.CJK_FONTS) if font_path else None)


def task_slip(session: DbSession, task: PackingTask, *, base_url: str) -> slips.PackingSlip:
    """What a task's slip says (the PNG and the printable page show the same QR code: the
    parcel's trace page, ``{base_url}/t/{trace_code}``, which the buyer scans to see where
    the parcel came from). Raises Conflict for a batch (it goes back to the partner, not
    to a buyer)."""
    if task.order_id is None:
        raise Conflict(
            _l(
                "Task %(task_id)s is a batch of a work order; only parcels have slips.",
                task_id=task.id,
            )
        )
    order = orders.get_order(session, task.order_id)
    workshop = session.get(Workshop, task.workshop_id) if task.workshop_id else None
    return slips.PackingSlip(
        order_number=str(order.id),
        # tasks queued before trace codes existed keep the old reference
        order_ref=(
            trace_url(base_url, task.trace_code) if task.trace_code else f"SHANHUO-ORDER-{order.id}"
        ),
        recipient=order.ship_name,
        region=order.ship_region,
        lines=tuple(slips.SlipLine(line.name, line.qty, line.unit_label) for line in task.lines),
        workshop=workshop.name if workshop else "",
        task_id=task.id,
    )
