from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from fulfillment.models import PackingTask, TaskState, Workshop, WorkshopMember
from shop.api import Int, ListQuery, page_schema
from shop.inputs import Input, Text

MAX_WEIGHT_G = 1_000_000  #: a tonne: far above any parcel


class WorkshopIn(Input):
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    village = Text(required=True, validate=validate.Length(min=1, max=200))

    class Meta:
        model = Workshop


class WorkshopOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    village = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)


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


class MemberList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MemberOut), required=True)


class TaskLineOut(ma.Schema):
    product_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    unit_label = ma.fields.String(required=True)
    qty = ma.fields.Integer(required=True)
    unit_weight_g = ma.fields.Integer(required=True)
    packing_rate_fen = ma.fields.Integer(required=True)


class TaskOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    order_id = ma.fields.Integer(required=True)
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


class WorkshopReportOut(ReportOut):
    workshop_id = ma.fields.Integer(required=True)
    name = ma.fields.String()
    village = ma.fields.String()
    active = ma.fields.Boolean()


class AllWorkshopsReportOut(ma.Schema):
    from_ = ma.fields.Date(data_key="from", attribute="from", required=True)
    to = ma.fields.Date(required=True)
    workshops = ma.fields.List(ma.fields.Nested(WorkshopReportOut), required=True)
    totals = ma.fields.Nested(ReportOut, required=True)
