"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from sqlalchemy import text

from shop.api import Blueprint
from shop.auth import public
from shop.db import db

blp = Blueprint("health", __name__, description="Health probes")


class HealthOut(ma.Schema):
    status = ma.fields.String(required=True)
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


@blp.route("/healthz", methods=["GET"])
@public
@blp.response(200, HealthOut)
def healthz() -> Any:
    """200 while the process is up."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@public
@blp.response(200, HealthOut)
@blp.alt_response(503, schema=HealthOut, description="The database does not answer")
def readyz() -> Any:
    """200 when the database answers; 503 when it does not.

    Redis (when configured) is reported but does not take the node out: without it
    orders still work, only live events and shared rate limits suffer, and every
    node shares the same Redis — a load balancer would drop them all at once. Its
    check then says ``degraded: …`` and the status is ``degraded``."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready
        db.session.rollback()
        checks["database"] = f"error: {type(exc).__name__}"
    redis_client = current_app.extensions.get("shanhuo.redis")
    if redis_client is not None:
        try:
            redis_client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"degraded: {type(exc).__name__}"
    if checks["database"] != "ok":
        return {"status": "unavailable", "checks": checks}, 503
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return {"status": status, "checks": checks}
