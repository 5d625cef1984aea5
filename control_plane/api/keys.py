"""The public keyring PoPs pin: every signing key, current and retired, by key id."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from control_plane.auth import public
from control_plane.context import control_plane, session
from control_plane.wire import format_time

bp = Blueprint("keys", __name__, url_prefix="/v1/keys")


@bp.get("")
@public
def get_keys() -> Response:
    """Public keys are public: no token needed. With an ETag, so a PoP polling for a
    rotation costs a 304.
    ---
    get:
      summary: The signing keyring, current and retired keys
      parameters:
        - {name: If-None-Match, in: header, required: false, schema: {type: string}}
      responses:
        200:
          description: Every signing key
          headers:
            ETag: {schema: {type: string}}
          content:
            application/json:
              schema:
                type: object
                required: [algorithm, current, keys]
                properties:
                  algorithm: {type: string, enum: [ed25519]}
                  current: {type: string, description: The key id signing now}
                  keys:
                    type: array
                    items:
                      type: object
                      required: [key_id, public_key, current, created_at]
                      properties:
                        key_id: {type: string, pattern: "^[0-9a-f]{16}$"}
                        public_key: {type: string, pattern: "^[0-9a-f]{64}$"}
                        current: {type: boolean}
                        created_at: {type: string, format: date-time}
        304: {description: "Unchanged since the ETag given in If-None-Match"}
    """
    keys = control_plane().keyring.keys(session())
    response = jsonify({
        "algorithm": "ed25519",
        "current": next(k.key_id for k in keys if k.is_current),
        "keys": [{"key_id": k.key_id, "public_key": k.public_key, "current": k.is_current,
                  "created_at": format_time(k.created_at)} for k in keys],
    })
    response.add_etag()
    return response.make_conditional(request)
