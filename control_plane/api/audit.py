"""The audit trail of the caller's merchant, with the control plane's own events (key
creation and rotation), filtered by time, actor and kind; as JSON pages, or the whole
selection as JSON Lines or CSV.
---
schemas:
  AuditEvent:
    type: object
    required: [id, at, kind, merchant_id, actor, details]
    properties:
      id: {type: integer}
      at: {type: string, format: date-time}
      kind: {type: string, examples: [token.created]}
      merchant_id: {type: [integer, "null"], description: null for the control plane's own events}
      actor: {type: string, pattern: '^(operator|token:[0-9]+)$'}
      details: {type: object}
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request, stream_with_context
from sqlalchemy import Select, or_, select

from control_plane.auth import caller, require
from control_plane.context import session
from control_plane.errors import invalid
from control_plane.storage.models import AuditEvent
from control_plane.wire import MAX_ID, format_time, parse_time, query_int

bp = Blueprint("audit", __name__, url_prefix="/v1/audit")

PAGE = 100
PAGE_LIMIT = 1000
EXPORT_BATCH = 500
FORMATS = ("json", "jsonl", "csv")
CSV_COLUMNS = ("id", "at", "kind", "merchant_id", "actor", "details")


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": format_time(event.at), "kind": event.kind,
            "merchant_id": event.merchant_id, "actor": event.actor, "details": event.details}


def _actor_filter(text: str) -> Any:
    if text == "operator":
        return AuditEvent.actor_token_id.is_(None)
    kind, _, number = text.partition(":")
    if kind != "token" or not (number.isascii() and number.isdecimal()) \
            or int(number) > MAX_ID:
        raise invalid("actor", f"expected operator or token:<id>, not {text!r}")
    return AuditEvent.actor_token_id == int(number)


def _selection() -> Select[AuditEvent]:
    """The caller's events matching the query's filters, oldest first. `since` is
    inclusive and `until` exclusive, so consecutive windows neither overlap nor miss."""
    query = select(AuditEvent).where(or_(AuditEvent.merchant_id == caller().merchant_id,
                                         AuditEvent.merchant_id.is_(None)))
    args = request.args
    if "since" in args:
        query = query.where(AuditEvent.at >= parse_time("since", args["since"]))
    if "until" in args:
        query = query.where(AuditEvent.at < parse_time("until", args["until"]))
    if "actor" in args:
        query = query.where(_actor_filter(args["actor"]))
    if "kind" in args:
        query = query.where(AuditEvent.kind == args["kind"])
    return query.order_by(AuditEvent.id)


@bp.get("")
@require("audit")
def get_audit() -> Any:
    """
    ---
    get:
      summary: The audit trail of the caller's merchant and the control plane's own events
      parameters:
        - name: format
          in: query
          schema: {type: string, enum: [json, jsonl, csv], default: json}
          description: json gives pages; jsonl and csv export the whole selection
        - {name: since, in: query, schema: {type: string, format: date-time},
           description: inclusive}
        - {name: until, in: query, schema: {type: string, format: date-time},
           description: exclusive}
        - {name: actor, in: query, schema: {type: string, pattern: '^(operator|token:[0-9]+)$'}}
        - {name: kind, in: query, schema: {type: string}}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 100},
           description: page size (format=json)}
        - {name: after, in: query, schema: {type: integer, minimum: 0, maximum: 9223372036854775807},
           description: the previous page's `next` (format=json)}
      responses:
        200:
          description: A page of events, oldest first, or the whole selection
          content:
            application/json:
              schema:
                type: object
                required: [events, next]
                properties:
                  events: {type: array, items: AuditEvent}
                  next: {type: [integer, "null"], description: the `after` of the next page}
            application/x-ndjson:
              schema: {type: string, description: one AuditEvent per line}
            text/csv:
              schema: {type: string, description: "columns id,at,kind,merchant_id,actor,details"}
    """
    output = request.args.get("format", "json")
    if output not in FORMATS:
        raise invalid("format", f"expected one of: {', '.join(FORMATS)}")
    query = _selection()
    if output == "json":
        return _page(query)
    lines = _jsonl(query) if output == "jsonl" else _csv(query)
    media = "application/x-ndjson" if output == "jsonl" else "text/csv; charset=utf-8"
    return Response(stream_with_context(lines), content_type=media, headers={
        "Content-Disposition": f'attachment; filename="audit.{output}"'})


def _page(query: Select[AuditEvent]) -> dict[str, Any]:
    """One page; `next` is the `after` that gives the following one (null at the end)."""
    limit = query_int("limit", PAGE, low=1, high=PAGE_LIMIT)
    after = query_int("after", 0, low=0, high=MAX_ID)
    rows = list(session().scalars(query.where(AuditEvent.id > after).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"events": [event_json(e) for e in rows], "next": rows[-1].id if more else None}


def _batches(query: Select[AuditEvent]) -> Iterator[list[AuditEvent]]:
    """The whole selection in id order, a batch at a time, so an export of a long trail
    neither holds it in memory nor keeps one cursor open for its whole transfer."""
    after = 0
    while True:
        batch = list(session().scalars(query.where(AuditEvent.id > after).limit(EXPORT_BATCH)))
        if not batch:
            return
        yield batch
        after = batch[-1].id


def _jsonl(query: Select[AuditEvent]) -> Iterator[str]:
    for batch in _batches(query):
        yield "".join(json.dumps(event_json(e), ensure_ascii=False) + "\n" for e in batch)


def _csv(query: Select[AuditEvent]) -> Iterator[str]:
    # Every cell starts with a digit, a letter or `{` (details are JSON), so no cell can be
    # read as a spreadsheet formula.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for batch in _batches(query):
        for event in batch:
            row = event_json(event)
            row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
            writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
