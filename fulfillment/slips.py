"""A packing task's slip: the task's order and lines drawn by ``media.slips``."""

from __future__ import annotations

from fulfillment.models import PackingTask, Workshop
from media import slips
from shop.db import DbSession
from shop.orders import service as orders


def task_slip_png(session: DbSession, task: PackingTask, *, font_path: str | None) -> bytes:
    """The PNG slip a villager prints and puts in the parcel: order number and QR code,
    recipient, region, lines. ``font_path`` (``SLIP_FONT_PATH``) is tried before the
    installed CJK fonts."""
    slip = task_slip(session, task)
    return slips.render_slip(slip, fonts=(font_path, *slips.CJK_FONTS) if font_path else None)


def task_slip(session: DbSession, task: PackingTask) -> slips.PackingSlip:
    """What a task's slip says (the PNG and the printable page show the same QR code)."""
    order = orders.get_order(session, task.order_id)
    workshop = session.get(Workshop, task.workshop_id) if task.workshop_id else None
    return slips.PackingSlip(
        order_number=str(order.id),
        order_ref=f"SHANHUO-ORDER-{order.id}",
        recipient=order.ship_name,
        region=order.ship_region,
        lines=tuple(slips.SlipLine(line.name, line.qty, line.unit_label) for line in task.lines),
        workshop=workshop.name if workshop else "",
        task_id=task.id,
    )
