"""Liveness and readiness for load balancers and orchestrators.
---
schemas:
  Health:
    type: object
    required: [status, database]
    properties:
      status: {type: string, enum: [ok, unavailable]}
      database: {type: string, description: "sqlite or postgresql; unreachable on a 503"}
"""

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
    """200 when the database answers, 503 when it does not (the process itself is up).
    ---
    get:
      summary: Liveness and readiness
      responses:
        200:
          description: Up, and the database answers
          content: {application/json: {schema: Health}}
        503:
          description: Up, but the database does not answer
          content: {application/json: {schema: Health}}
    """
    try:
        session().execute(text("SELECT 1"))
    except SQLAlchemyError:
        return {"status": "unavailable", "database": "unreachable"}, 503
    backend = control_plane().db.url.get_backend_name()
    return {"status": "ok", "database": backend}, 200
