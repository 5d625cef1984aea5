"""Coupon codes and redemption state: a merchant issues a `generate` set's codes (shown once)
and reads the redemption snapshot; a PoP pulls the signed snapshot (docs/redemptions.md).
---
schemas:
  IssuedCodes:
    type: object
    required: [set, program, version, issued, total, count, codes]
    properties:
      set: {type: string}
      program: {type: string}
      version: {type: integer}
      issued: {type: integer, description: codes issued by this call}
      total: {type: integer, description: codes of the set issued so far}
      count: {type: integer, description: the set's generate.count}
      codes: {type: array, items: {type: string}, description: shown this once}
      message: {type: string, description: when this call issued none}
  RedemptionSnapshot:
    type: object
    description: "The signed document: canonical JSON (sorted keys, no spaces, UTF-8)"
    required: [format, merchant, version, program, issued, spent, spent_sets,
               spent_by_customer]
    additionalProperties: false
    properties:
      format: {type: string, enum: [poprules-redemptions/1]}
      merchant: {type: integer}
      version: {type: integer, minimum: 1}
      program: {type: string}
      issued:
        type: object
        description: set id -> keyed hashes of its issued codes, sorted
        additionalProperties: {type: array, items: {type: string}}
      spent: {type: array, items: {type: string}, description: "keyed hashes, sorted"}
      spent_sets: {type: array, items: {type: string}}
      spent_by_customer:
        type: object
        description: customer subject hash -> set ids at their per_customer, sorted
        additionalProperties: {type: array, items: {type: string}}
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from control_plane import coupons
from control_plane.auth import caller, require
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.pop_auth import calling_pop, require_pop
from control_plane.storage.models import ProgramVersion, RedemptionSnapshot
from control_plane.versions import program_of
from control_plane.wire import format_time

bp = Blueprint("coupons", __name__, url_prefix="/v1")

FORMATS = ("json", "csv")
# Codes are secrets shown once: no cache along the way may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}


def _output() -> str:
    """`?format=` when given, else what `Accept` prefers (JSON when it does not say)."""
    chosen = request.args.get("format")
    if chosen is None:
        best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
        return "csv" if best == "text/csv" else "json"
    if chosen not in FORMATS:
        raise invalid("format", f"expected one of: {', '.join(FORMATS)}")
    return chosen


@bp.post("/merchants/<int:merchant_id>/versions/<int:number>/coupon-sets/<set_id>/codes")
@require("publish")
def post_codes(merchant_id: int, number: int, set_id: str) -> Response:
    """Issue the set's codes not issued yet. The codes are in this answer and nowhere else
    (only their keyed hashes are stored), so a second call issues none and says so rather
    than show them again.
    ---
    post:
      summary: Issue a generate set's codes, shown once
      parameters:
        - {name: format, in: query, schema: {type: string, enum: [json, csv]},
           description: "default: what Accept prefers, else json"}
      responses:
        201:
          description: Codes issued (X-Poprules-Issued says how many)
          headers:
            X-Poprules-Issued: {schema: {type: integer}}
          content:
            application/json: {schema: IssuedCodes}
            text/csv: {schema: {type: string, description: "a header `code`, one code a row"}}
        200:
          description: Every code of the set was issued already; none are issued or shown
          headers:
            X-Poprules-Issued: {schema: {type: integer}}
          content:
            application/json: {schema: IssuedCodes}
            text/csv: {schema: {type: string, description: "the header `code` alone"}}
        404: {description: No such version or coupon set, content: {application/json: {schema: Error}}}
        422: {description: "The set has no generate, its code space is too small, or format is unknown", content: {application/json: {schema: Error}}}
    """
    output = _output()
    version = session().scalar(select(ProgramVersion).where(
        ProgramVersion.merchant_id == merchant_id, ProgramVersion.number == number))
    if version is None:
        raise ApiError(404, "number", f"no version {number}")
    coupon_set = next((s for s in program_of(version).coupons if s.id == set_id), None)
    if coupon_set is None:
        raise ApiError(404, "set_id", f"version {number} has no coupon set {set_id!r}")
    if coupon_set.generate is None:
        raise invalid("set_id", f"the coupon set {set_id!r} has no generate: its codes are "
                      "the program's literal codes")
    issued = coupons.issue_codes(session(), version, coupon_set,
                                 actor_token_id=caller().token_id)
    session().commit()
    status = 201 if issued.codes else 200
    headers = {**NO_STORE, "X-Poprules-Issued": str(len(issued.codes))}
    if output == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(["code"])
        writer.writerows([code] for code in issued.codes)
        headers["Content-Disposition"] = f'attachment; filename="{set_id}-codes.csv"'
        return Response(text.getvalue(), status=status, content_type="text/csv; charset=utf-8",
                        headers=headers)
    body: dict[str, Any] = {"set": set_id, "program": version.program_name, "version": number,
                            "issued": len(issued.codes), "total": issued.total,
                            "count": issued.count, "codes": issued.codes}
    if not issued.codes:
        body["message"] = (f"all {issued.count} codes of this set were issued already; codes "
                           "are shown only when they are issued")
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


@bp.get("/merchants/<int:merchant_id>/redemptions")
@require("read")
def get_redemptions(merchant_id: int) -> dict[str, Any]:
    """The latest snapshot as PoPs receive it, parsed, with its version and signature.
    ---
    get:
      summary: The latest redemption snapshot (docs/redemptions.md)
      responses:
        200:
          description: The latest snapshot
          content:
            application/json:
              schema:
                type: object
                required: [version, digest, key_id, signature, created_at, snapshot]
                properties:
                  version: {type: integer}
                  digest: {type: string, pattern: "^sha256:[0-9a-f]{64}$"}
                  key_id: {type: string}
                  signature: {type: string}
                  created_at: {type: string, format: date-time}
                  snapshot: RedemptionSnapshot
        404: {description: No snapshot yet (no release is live), content: {application/json: {schema: Error}}}
    """
    row = coupons.latest_snapshot(session(), merchant_id)
    if row is None:
        raise ApiError(404, None, "no redemption snapshot yet: there is one once a release is "
                       "live and codes are issued or redeemed")
    return {"version": row.version, "digest": row.digest, "key_id": row.key_id,
            "signature": row.signature, "created_at": format_time(row.created_at),
            "snapshot": json.loads(row.body)}


@bp.get("/pops/<int:pop_id>/redemptions")
@require_pop
def get_pop_redemptions(pop_id: int) -> Response:
    """The signed snapshot's bytes, as signed; its ETag is their digest, so a poll that finds
    nothing new is a 304 that reads a few short columns, not the codes.
    ---
    get:
      summary: The merchant's signed redemption snapshot (docs/redemptions.md)
      parameters:
        - {name: If-None-Match, in: header, required: false, schema: {type: string}}
      responses:
        200:
          description: "The snapshot: canonical JSON; verify the signature over it first"
          headers:
            ETag: {schema: {type: string}}
            X-Poprules-Snapshot-Version: {schema: {type: integer}}
            X-Poprules-Key-Id: {schema: {type: string}}
            X-Poprules-Signature: {schema: {type: string}}
          content:
            application/json: {schema: RedemptionSnapshot}
        304: {description: "Unchanged since the ETag given in If-None-Match"}
        404: {description: "No snapshot yet: quote with no redemption state", content: {application/json: {schema: Error}}}
    """
    head = session().execute(
        select(RedemptionSnapshot.id, RedemptionSnapshot.version, RedemptionSnapshot.digest,
               RedemptionSnapshot.key_id, RedemptionSnapshot.signature)
        .where(RedemptionSnapshot.merchant_id == calling_pop().merchant_id)
        .order_by(RedemptionSnapshot.version.desc()).limit(1)).one_or_none()
    if head is None:
        raise ApiError(404, None, "no redemption snapshot yet: quote with no redemption state "
                       "(only the release's own codes, none spent) and poll again")
    snapshot_id, version, digest, key_id, signature = head
    headers = {"ETag": f'"{digest}"', "Cache-Control": "no-cache",
               "X-Poprules-Snapshot-Version": str(version), "X-Poprules-Key-Id": key_id,
               "X-Poprules-Signature": signature}
    # If-None-Match compares weakly and may be a list or `*` (RFC 9110, 13.1.2).
    if request.if_none_match.contains_weak(digest):
        unchanged = Response(status=304, headers=headers)
        del unchanged.headers["Content-Type"]
        return unchanged
    body = session().scalars(select(RedemptionSnapshot.body)
                             .where(RedemptionSnapshot.id == snapshot_id)).one()
    return Response(body, content_type="application/json", headers=headers)
