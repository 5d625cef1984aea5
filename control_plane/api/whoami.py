"""Who the caller is: what a client needs to learn from its token alone (its merchant, to
build the merchant's paths)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from control_plane.auth import SCOPES, any_token, caller

bp = Blueprint("whoami", __name__, url_prefix="/v1/whoami")


@bp.get("")
@any_token
def get_whoami() -> dict[str, Any]:
    """Any token may ask, whatever its scopes: a client holding only an audit token must
    still find its merchant.
    ---
    get:
      summary: The calling token's merchant, id and scopes
      responses:
        200:
          description: The caller
          content:
            application/json:
              schema:
                type: object
                required: [merchant_id, token_id, scopes]
                properties:
                  merchant_id: {type: integer}
                  token_id: {type: integer}
                  scopes:
                    type: array
                    items: {type: string, enum: [publish, read, audit]}
    """
    who = caller()
    return {"merchant_id": who.merchant_id, "token_id": who.token_id,
            "scopes": [s for s in SCOPES if s in who.scopes]}
