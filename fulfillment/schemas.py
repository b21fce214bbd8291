from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from fulfillment.models import (
    MAX_BONUS_BP,
    MAX_LEVEL,
    MIN_LEVEL,
    PackingTask,
    Partner,
    SkillChange,
    TaskKind,
    TaskState,
    Training,
    WorkOrder,
    Workshop,
    WorkshopMember,
)
from shop.api import Fen, Int, ListQuery, page_schema
from shop.inputs import Input, Text

MAX_WEIGHT_G = 1_000_000  #: a tonne: far above any parcel


class WorkshopIn(Input):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    village = Text(required=True, validate=validate.Length(min=1, max=200))
    serves_disabled = ma.fields.Boolean(load_default=False)

    class Meta:
        model = Workshop


class WorkshopOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    village = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)
    serves_disabled = ma.fields.Boolean(required=True)
    #: bonus per level in basis points: {"1": 0, "2": bp, "3": bp}
    skill_bonus_bp = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class WorkshopList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WorkshopOut), required=True)


class MemberIn(Input):
    user_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    lead = ma.fields.Boolean(load_default=False)  #: the lead may see the workshop's report

    class Meta:
        model = WorkshopMember


class MemberOut(ma.Schema):
    workshop_id = ma.fields.Integer(required=True)
    user_id = ma.fields.Integer(required=True)
    lead = ma.fields.Boolean(required=True)
    joined_at = ma.fields.DateTime(required=True)
    skills = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Integer(), metadata={"example": {"parcel": 1}}
    )


class MemberList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MemberOut), required=True)


class TaskLineOut(ma.Schema):
    product_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    unit_label = ma.fields.String(required=True)
    qty = ma.fields.Integer(required=True)
    unit_weight_g = ma.fields.Integer(required=True)
    packing_rate_fen = ma.fields.Integer(required=True)


class TaskLotOut(ma.Schema):
    code = ma.fields.String(required=True)
    product_id = ma.fields.Integer(required=True)
    qty = ma.fields.Integer(required=True)


class TaskOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": [k.value for k in TaskKind]})
    order_id = ma.fields.Integer(required=True, allow_none=True)
    work_order_id = ma.fields.Integer(allow_none=True)
    pieces = ma.fields.Integer(allow_none=True)  #: a batch's planned pieces
    pieces_done = ma.fields.Integer(allow_none=True)
    due_at = ma.fields.DateTime(required=True)
    level = ma.fields.Integer(allow_none=True)  #: the claimer's level, fixed at claim
    bonus_bp = ma.fields.Integer(required=True)
    bonus_fen = ma.fields.Integer(required=True)  #: on the full base rate
    trace_code = ma.fields.String(allow_none=True)
    lots = ma.fields.List(ma.fields.Nested(TaskLotOut))
    workshop_id = ma.fields.Integer(required=True, allow_none=True)
    state = ma.fields.String(required=True)
    claimed_by = ma.fields.Integer(required=True, allow_none=True)
    claimed_at = ma.fields.DateTime(allow_none=True)
    lease_expires_at = ma.fields.DateTime(required=True, allow_none=True)
    piece_rate_fen = ma.fields.Integer(required=True)
    expected_weight_g = ma.fields.Integer(required=True)
    packed_by = ma.fields.Integer(allow_none=True)
    packed_at = ma.fields.DateTime(allow_none=True)
    packed_weight_g = ma.fields.Integer(allow_none=True)
    needs_review = ma.fields.Boolean(required=True)
    lease_extended = ma.fields.Boolean()
    created_at = ma.fields.DateTime(required=True)
    lines = ma.fields.List(ma.fields.Nested(TaskLineOut), required=True)


TaskPage = page_schema(TaskOut, "PackingTaskPage")


class TaskQuery(ListQuery):
    state = ma.fields.String(
        load_default=None, validate=validate.OneOf([s.value for s in TaskState])
    )


class CompleteIn(Input):
    packed_weight_g = Int(load_default=None, validate=validate.Range(min=1, max=MAX_WEIGHT_G))
    #: a batch done short: the pieces done (default: all of them)
    pieces_done = Int(load_default=None, validate=validate.Range(min=1))

    class Meta:
        model = PackingTask


class RangeQuery(Input):
    """``?from=&to=``: business days (``SHOP_TIMEZONE``), both inclusive."""

    from_ = ma.fields.Date(data_key="from", load_default=None)
    to = ma.fields.Date(load_default=None)


class DayOut(ma.Schema):
    date = ma.fields.Date(required=True)
    tasks = ma.fields.Integer(required=True)
    earnings_fen = ma.fields.Integer(required=True)


class EarningsOut(ma.Schema):
    from_ = ma.fields.Date(data_key="from", attribute="from", required=True)
    to = ma.fields.Date(required=True)
    timezone = ma.fields.String(required=True)
    tasks_packed = ma.fields.Integer(required=True)
    earnings_fen = ma.fields.Integer(required=True)
    by_day = ma.fields.List(ma.fields.Nested(DayOut), required=True)


class WorkerOut(ma.Schema):
    user_id = ma.fields.Integer(required=True)
    tasks = ma.fields.Integer(required=True)
    earnings_fen = ma.fields.Integer(required=True)
    days_worked = ma.fields.Integer(required=True)


class ReportOut(ma.Schema):
    from_ = ma.fields.Date(data_key="from", attribute="from", required=True)
    to = ma.fields.Date(required=True)
    tasks_packed = ma.fields.Integer(required=True)
    wages_fen = ma.fields.Integer(required=True)
    active_workers = ma.fields.Integer(required=True)
    workers = ma.fields.List(ma.fields.Nested(WorkerOut), required=True)
    median_paid_to_packed_s = ma.fields.Integer(required=True, allow_none=True)


class LevelWagesOut(ma.Schema):
    level = ma.fields.Integer(required=True, allow_none=True)
    workers = ma.fields.Integer(required=True)
    tasks = ma.fields.Integer(required=True)
    base_fen = ma.fields.Integer(required=True)
    bonus_fen = ma.fields.Integer(required=True)
    wages_fen = ma.fields.Integer(required=True)


class TrainingOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    workshop_id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    held_on = ma.fields.Date(required=True)
    attendee_ids = ma.fields.List(ma.fields.Integer(), required=True)


class WorkshopReportOut(ReportOut):
    workshop_id = ma.fields.Integer(required=True)
    name = ma.fields.String()
    village = ma.fields.String()
    active = ma.fields.Boolean()
    wages_by_level = ma.fields.List(ma.fields.Nested(LevelWagesOut))
    trainings = ma.fields.List(ma.fields.Nested(TrainingOut))


class AllWorkshopsReportOut(ma.Schema):
    from_ = ma.fields.Date(data_key="from", attribute="from", required=True)
    to = ma.fields.Date(required=True)
    workshops = ma.fields.List(ma.fields.Nested(WorkshopReportOut), required=True)
    totals = ma.fields.Nested(ReportOut, required=True)


# ---------------------------------------------------------------- partners, work orders


class PartnerIn(Input):
    name = Text(required=True, validate=validate.Length(min=1))
    contact = Text(load_default=None, allow_none=True)

    class Meta:
        model = Partner


class PartnerOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    contact = ma.fields.String(required=True, allow_none=True)


class PartnerList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PartnerOut), required=True)


MAX_PIECES = 1_000_000  #: one work order: a million pencils is far beyond a workshop's month


class WorkOrderIn(Input):
    partner_id = Int(required=True, validate=validate.Range(min=1))
    workshop_id = Int(required=True, validate=validate.Range(min=1))
    item = Text(required=True, validate=validate.Length(min=1))
    pieces = Int(required=True, validate=validate.Range(min=1, max=MAX_PIECES))
    batch_pieces = Int(required=True, validate=validate.Range(min=1, max=MAX_PIECES))
    batch_rate_fen = Fen(required=True, validate=validate.Range(min=0, max=10_000_000))
    batch_price_fen = Fen(required=True, validate=validate.Range(min=0, max=10_000_000))
    due_on = ma.fields.Date(required=True)

    class Meta:
        model = WorkOrder


class WorkOrderOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    workshop_id = ma.fields.Integer(required=True)
    item = ma.fields.String(required=True)
    pieces = ma.fields.Integer(required=True)
    batch_pieces = ma.fields.Integer(required=True)
    batch_rate_fen = ma.fields.Integer(required=True)
    batch_price_fen = ma.fields.Integer(required=True)
    due_on = ma.fields.Date(required=True)
    batches = ma.fields.Integer(required=True)  #: ⌈pieces / batch_pieces⌉ planned
    state = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    done_at = ma.fields.DateTime(allow_none=True)
    batches_done = ma.fields.Integer(required=True)
    batches_open = ma.fields.Integer(required=True)
    pieces_done = ma.fields.Integer(required=True)
    pieces_left = ma.fields.Integer(required=True)
    wages_fen = ma.fields.Integer(required=True)
    partner_amount_fen = ma.fields.Integer(required=True)


class StatementLineOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    item = ma.fields.String(required=True)
    workshop_id = ma.fields.Integer(required=True)
    batches = ma.fields.Integer(required=True)
    pieces = ma.fields.Integer(required=True)
    partner_amount_fen = ma.fields.Integer(required=True)
    wages_fen = ma.fields.Integer(required=True)


class StatementOut(ma.Schema):
    partner_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    from_ = ma.fields.Date(data_key="from", attribute="from", required=True)
    to = ma.fields.Date(required=True)
    pieces = ma.fields.Integer(required=True)
    partner_amount_fen = ma.fields.Integer(required=True)
    wages_fen = ma.fields.Integer(required=True)
    work_orders = ma.fields.List(ma.fields.Nested(StatementLineOut), required=True)


# ---------------------------------------------------------------- skills, trainings


class SkillIn(Input):
    kind = ma.fields.String(required=True, validate=validate.OneOf([k.value for k in TaskKind]))
    level = Int(required=True, validate=validate.Range(min=MIN_LEVEL, max=MAX_LEVEL))
    reason = Text(required=True, validate=validate.Length(min=1))

    class Meta:
        model = SkillChange


class LeadIn(Input):
    lead = ma.fields.Boolean(required=True)


class SkillBonusIn(Input):
    level2_bonus_bp = Int(
        data_key="2", required=True, validate=validate.Range(min=0, max=MAX_BONUS_BP)
    )
    level3_bonus_bp = Int(
        data_key="3", required=True, validate=validate.Range(min=0, max=MAX_BONUS_BP)
    )

    class Meta:
        model = Workshop


class WorkshopPatchIn(Input):
    serves_disabled = ma.fields.Boolean()


class SkillChangeOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    user_id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    from_level = ma.fields.Integer(required=True)
    to_level = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True)
    changed_by = ma.fields.Integer(required=True)
    changed_at = ma.fields.DateTime(required=True)


class SkillChangeList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SkillChangeOut), required=True)


MAX_ATTENDEES = 500


class TrainingIn(Input):
    title = Text(required=True, validate=validate.Length(min=1))
    held_on = ma.fields.Date(required=True)
    attendee_ids = ma.fields.List(
        Int(validate=validate.Range(min=1, max=2**31 - 1)),
        required=True,
        validate=validate.Length(max=MAX_ATTENDEES),
    )

    class Meta:
        model = Training


class TrainingList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TrainingOut), required=True)


# ---------------------------------------------------------------- the impact report


class YearQuery(Input):
    year = ma.fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100))


class ImpactFiguresOut(ma.Schema):
    workers = ma.fields.Integer(required=True)
    parcels = ma.fields.Integer(required=True)
    pieces = ma.fields.Integer(required=True)
    wages_fen = ma.fields.Integer(required=True)
    median_monthly_wage_fen = ma.fields.Integer(required=True, allow_none=True)
    workers_paid_by_month = ma.fields.List(ma.fields.Integer(), required=True)


class ImpactWorkshopOut(ImpactFiguresOut):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    village = ma.fields.String(required=True)
    serves_disabled = ma.fields.Boolean(required=True)


class ImpactDisabledOut(ImpactFiguresOut):
    workshops = ma.fields.Integer(required=True)


class ImpactOut(ma.Schema):
    year = ma.fields.Integer(required=True)
    workshops = ma.fields.List(ma.fields.Nested(ImpactWorkshopOut), required=True)
    totals = ma.fields.Nested(ImpactFiguresOut, required=True)
    serves_disabled = ma.fields.Nested(ImpactDisabledOut, required=True)
