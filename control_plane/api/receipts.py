"""Receipts: a PoP uploads the receipts it signed; a merchant reconciles a PoP's chain
(docs/receipts.md).
---
schemas:
  ReceiptResult:
    type: object
    required: [id, status]
    properties:
      id:
        type: [string, "null"]
        description: "The receipt's id, <pop>-<seq>; null when its body could not be read"
      status:
        type: string
        enum: [booked, flagged, held, duplicate, rejected]
      reason: {type: string, description: "Why it is flagged, held or rejected"}
      field: {type: string, description: "A rejected receipt's field at fault"}
      original:
        type: string
        enum: [booked, flagged, held]
        description: "A duplicate's status, as stored"
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from control_plane import pops, receipts, reconcile
from control_plane.auth import caller, require
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.pop_auth import calling_pop, require_pop
from control_plane.storage.models import Pop, utcnow
from control_plane.wire import MAX_ID, json_body, query_int

bp = Blueprint("receipts", __name__, url_prefix="/v1")


@bp.post("/receipts")
@require_pop
def post_receipts() -> dict[str, Any]:
    """Each receipt is judged on its own and the batch committed at once: the answer names
    every receipt's fate, and a batch is never refused for one bad receipt in it (only for a
    body that is no batch). Every status is final: a PoP may drop from its outbox whatever
    has an answer.
    ---
    post:
      summary: Upload signed receipts (a PoP's outbox), in any order, replays included
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [receipts]
              additionalProperties: false
              properties:
                receipts:
                  type: array
                  minItems: 1
                  maxItems: 500
                  items:
                    type: object
                    required: [body, signature]
                    additionalProperties: false
                    properties:
                      body: {type: string, description: "The receipt's canonical JSON text"}
                      signature:
                        type: string
                        pattern: "^[0-9a-f]{128}$"
                        description: "Ed25519 by the PoP's enrolled key over poprules-receipt/1 and the body"
      responses:
        200:
          description: One result per receipt, in the order given
          content:
            application/json:
              schema:
                type: object
                required: [results]
                properties:
                  results: {type: array, items: ReceiptResult}
    """
    body = json_body(frozenset({"receipts"}))
    items = body.get("receipts")
    if not isinstance(items, list) or not 1 <= len(items) <= receipts.MAX_BATCH:
        raise invalid("receipts", f"required: a list of 1 to {receipts.MAX_BATCH} receipts")
    pop = calling_pop()
    pops.mark_seen(session(), pop, utcnow())
    return {"results": [result.to_json() for result in receipts.ingest(session(), pop, items)]}


@bp.get("/pops/<int:pop_id>/reconciliation")
@require("read")
def get_reconciliation(pop_id: int) -> dict[str, Any]:
    """Another merchant's PoP is 404, like one that does not exist: ids are never confirmed
    to outsiders.
    ---
    get:
      summary: A PoP's receipts issued, received, booked, flagged and held, and every gap
      parameters:
        - name: issued
          in: query
          required: false
          schema: {type: integer, minimum: 0, maximum: 2147483647}
          description: "The PoP's own count of receipts issued, when the highest seq received may be short of it"
      responses:
        200:
          description: The PoP's reconciliation
          content:
            application/json:
              schema:
                type: object
                required: [pop, name, issued, received, booked, flagged, held, gaps, flags]
                properties:
                  pop: {type: integer}
                  name: {type: string}
                  issued: {type: integer, description: "The higher of the highest seq received and ?issued"}
                  received: {type: integer}
                  booked: {type: integer}
                  flagged: {type: integer}
                  held: {type: integer}
                  gaps:
                    type: array
                    description: "Seqs from 1 to issued never received (or rejected), as [from, to]"
                    items: {type: array, items: {type: integer}, minItems: 2, maxItems: 2}
                  flags:
                    type: array
                    description: "Every receipt received but not booked, by seq"
                    items:
                      type: object
                      required: [seq, id, status, reason]
                      properties:
                        seq: {type: integer}
                        id: {type: string}
                        status: {type: string, enum: [flagged, held]}
                        reason: {type: [string, "null"]}
    """
    issued = query_int("issued", 0, low=0, high=MAX_ID)
    pop = session().get(Pop, pop_id) if pop_id <= MAX_ID else None
    if pop is None or pop.merchant_id != caller().merchant_id:
        raise ApiError(404, "pop_id", "no such PoP")
    return reconcile.report(session(), pop, issued)
