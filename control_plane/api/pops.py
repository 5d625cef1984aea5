"""PoPs: a merchant enrolls and groups them; a PoP pulls the release its group runs.
---
schemas:
  Pop:
    type: object
    required: [id, name, group, public_key, enrolled_at, last_seen_at]
    properties:
      id: {type: integer}
      name: {type: string}
      group: {type: string}
      public_key: {type: string, pattern: "^[0-9a-f]{64}$", description: "Ed25519, hex"}
      enrolled_at: {type: string, format: date-time}
      last_seen_at:
        type: [string, "null"]
        format: date-time
        description: Its latest call, to the minute; null before its first
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from control_plane import pops
from control_plane.auth import caller, public, require
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.pop_auth import calling_pop, require_pop
from control_plane.storage.models import Pop, utcnow
from control_plane.wire import format_time, json_body
from poprules.request import is_integer, is_text

bp = Blueprint("pops", __name__, url_prefix="/v1")

BUNDLE_MEDIA = "application/vnd.poprules.bundle+msgpack"
DEFAULT_EXPIRES_IN = 86_400
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 30 * 86_400
SECRET_HEADERS = {"Cache-Control": "no-store"}  # answers carrying a secret are never cached


def _name(field: str, value: Any) -> str:
    if not is_text(value) or not pops.NAME.fullmatch(value):
        raise invalid(field, "expected 1 to 64 characters of a-z, 0-9, _ and -")
    return value


@bp.post("/merchants/<int:merchant_id>/enrollment-tokens")
@require("publish")
def post_enrollment_token(merchant_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A one-time secret that enrolls the PoP named `pop` into `group`; shown this once.
    ---
    post:
      summary: A one-time secret that enrolls a named PoP into a rollout group
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [pop]
              additionalProperties: false
              properties:
                pop: {type: string, pattern: "^[a-z0-9_-]{1,64}$"}
                group: {type: string, pattern: "^[a-z0-9_-]{1,64}$", default: default}
                expires_in: {type: integer, minimum: 60, maximum: 2592000, default: 86400}
      responses:
        201:
          description: The enrollment secret `token`, shown this once
          content:
            application/json:
              schema:
                type: object
                required: [id, pop, group, expires_at, token]
                properties:
                  id: {type: integer}
                  pop: {type: string}
                  group: {type: string}
                  expires_at: {type: string, format: date-time}
                  token: {type: string, pattern: "^pre_[A-Za-z0-9_-]{43}$"}
        409: {description: A PoP of that name is enrolled already, content: {application/json: {schema: Error}}}
    """
    body = json_body(frozenset({"pop", "group", "expires_in"}))
    if "pop" not in body:
        raise invalid("pop", "required: the name of the PoP to enroll")
    name = _name("pop", body["pop"])
    group = _name("group", body.get("group", pops.DEFAULT_GROUP))
    expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
    if not is_integer(expires_in) or not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
        raise invalid("expires_in", f"expected a whole number of seconds from {MIN_EXPIRES_IN} "
                      f"to {MAX_EXPIRES_IN} (30 days)")
    row, secret = pops.create_enrollment_token(session(), merchant_id, name, group, expires_in,
                                               actor_token_id=caller().token_id)
    session().commit()
    return ({"id": row.id, "pop": row.pop_name, "group": row.group,
             "expires_at": format_time(row.expires_at), "token": secret}, 201, SECRET_HEADERS)


@bp.post("/pops/enroll")
@public
def post_enroll() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Open to anyone, since a new PoP has no secret yet: the enrollment secret in the body
    is the credential.
    ---
    post:
      summary: A new PoP trades its enrollment secret and public key for its PoP secret
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [enrollment_token, public_key]
              additionalProperties: false
              properties:
                enrollment_token: {type: string, description: "The pre_... secret"}
                public_key:
                  type: string
                  pattern: "^[0-9a-fA-F]{64}$"
                  description: The PoP's Ed25519 public key (a valid point of prime order)
      responses:
        201:
          description: The PoP, with its secret `token`, shown this once
          content:
            application/json:
              schema:
                type: object
                required: [pop_id, merchant_id, name, group, token]
                properties:
                  pop_id: {type: integer}
                  merchant_id: {type: integer}
                  name: {type: string}
                  group: {type: string}
                  token: {type: string, pattern: "^prp_[A-Za-z0-9_-]{43}$"}
        401: {description: "An unknown, used or expired enrollment secret", content: {application/json: {schema: Error}}}
        422: {description: "A malformed body, or (with a live secret) a key that is not a valid point", content: {application/json: {schema: Error}}}
        409: {description: "A PoP of that name is enrolled already (the secret stays unused)", content: {application/json: {schema: Error}}}
    """
    body = json_body(frozenset({"enrollment_token", "public_key"}))
    secret = body.get("enrollment_token")
    if not is_text(secret):
        raise invalid("enrollment_token", "required: the pre_... secret the merchant made")
    key = body.get("public_key")
    if not is_text(key):
        raise invalid("public_key", "required: the PoP's Ed25519 public key, 64 hex digits")
    pop, pop_secret = pops.enroll(session(), secret, key.lower())
    return ({"pop_id": pop.id, "merchant_id": pop.merchant_id, "name": pop.name,
             "group": pop.group, "token": pop_secret}, 201, SECRET_HEADERS)


@bp.get("/pops/<int:pop_id>/release")
@require_pop
def get_release(pop_id: int) -> Response:
    """The bundle of the release the PoP's group runs, or 304 when the PoP has it (its
    ETag is the release hash). The signature travels in headers, so the bundle is the bytes
    the hash covers, as published.
    ---
    get:
      summary: The bundle of the release the PoP's group runs (docs/bundle.md)
      parameters:
        - {name: If-None-Match, in: header, required: false, schema: {type: string}}
      responses:
        200:
          description: "The bundle; verify its signature (headers) before running it"
          headers:
            ETag: {schema: {type: string}, description: "The release hash, in double quotes"}
            X-Poprules-Release: {schema: {type: integer}}
            X-Poprules-Release-Hash: {schema: {type: string}}
            X-Poprules-Key-Id: {schema: {type: string}}
            X-Poprules-Signature: {schema: {type: string}}
          content:
            application/vnd.poprules.bundle+msgpack: {schema: {type: string, format: binary}}
        304: {description: "Unchanged since the ETag given in If-None-Match"}
        404: {description: "No release rolled out to the PoP's group yet", content: {application/json: {schema: Error}}}
    """
    pop = calling_pop()
    pops.mark_seen(session(), pop, utcnow())
    head = pops.live_release_head(session(), pop.merchant_id, pop.group)
    if head is None:
        raise ApiError(404, None, "no release has been rolled out to this PoP's group yet")
    headers = {"ETag": f'"{head.release_hash}"', "Cache-Control": "no-cache",
               "X-Poprules-Release": str(head.number),
               "X-Poprules-Release-Hash": head.release_hash,
               "X-Poprules-Key-Id": head.key_id, "X-Poprules-Signature": head.signature}
    # If-None-Match compares weakly and may be a list or `*` (RFC 9110, 13.1.2).
    if request.if_none_match.contains_weak(head.release_hash):
        unchanged = Response(status=304, headers=headers)
        del unchanged.headers["Content-Type"]
        return unchanged
    return Response(pops.release_bundle(session(), head.id), content_type=BUNDLE_MEDIA,
                    headers=headers)


@bp.get("/merchants/<int:merchant_id>/pops")
@require("read")
def list_pops(merchant_id: int) -> dict[str, Any]:
    """
    ---
    get:
      summary: The merchant's PoPs (never their secrets)
      responses:
        200:
          description: Every PoP, oldest first
          content:
            application/json:
              schema:
                type: object
                required: [pops]
                properties:
                  pops: {type: array, items: Pop}
    """
    rows = session().scalars(select(Pop).where(Pop.merchant_id == merchant_id).order_by(Pop.id))
    return {"pops": [pops.pop_json(p) for p in rows]}


@bp.patch("/merchants/<int:merchant_id>/pops/<int:pop_id>")
@require("publish")
def patch_pop(merchant_id: int, pop_id: int) -> dict[str, Any]:
    """Move a PoP to another rollout group: from its next poll it runs that group's
    release.
    ---
    patch:
      summary: Move a PoP to another rollout group
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [group]
              additionalProperties: false
              properties:
                group: {type: string, pattern: "^[a-z0-9_-]{1,64}$"}
      responses:
        200: {description: The PoP, content: {application/json: {schema: Pop}}}
    """
    body = json_body(frozenset({"group"}))
    if "group" not in body:
        raise invalid("group", "required: the rollout group to move the PoP to")
    group = _name("group", body["group"])
    pop = session().get(Pop, pop_id)
    if pop is None or pop.merchant_id != merchant_id:
        raise ApiError(404, "pop_id", "no such PoP")
    pops.move(session(), pop, group, actor_token_id=caller().token_id)
    session().commit()
    return pops.pop_json(pop)
