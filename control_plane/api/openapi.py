"""The OpenAPI document of this very server (control_plane/openapi.py builds it from the
routes and their views' contracts)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from control_plane import openapi
from control_plane.auth import public

bp = Blueprint("openapi", __name__)

_CACHE_KEY = "poprules.openapi"


@bp.get("/openapi.json")
@public
def get_openapi() -> dict[str, Any]:
    """Built on first request, when every blueprint is registered, and kept: routes do not
    change while the app runs.
    ---
    get:
      summary: This API's OpenAPI 3.1 document
      responses:
        200:
          description: The document
          content:
            application/json:
              schema: {type: object, required: [openapi, info, paths]}
    """
    if _CACHE_KEY not in current_app.extensions:
        current_app.extensions[_CACHE_KEY] = openapi.build(current_app)
    document: dict[str, Any] = current_app.extensions[_CACHE_KEY]
    return document
