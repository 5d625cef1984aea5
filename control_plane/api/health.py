"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from control_plane.auth import public
from control_plane.context import control_plane, session

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz() -> tuple[dict[str, Any], int]:
    """200 when the database answers, 503 when it does not (the process itself is up)."""
    try:
        session().execute(text("SELECT 1"))
    except SQLAlchemyError:
        return {"status": "unavailable", "database": "unreachable"}, 503
    backend = control_plane().db.url.get_backend_name()
    return {"status": "ok", "database": backend}, 200
