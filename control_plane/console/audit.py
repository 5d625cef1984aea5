"""The audit trail page: the same events GET /v1/audit gives (the merchant's, and the control
plane's own such as key rotations), newest first, a page at a time."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from sqlalchemy import or_, select
from werkzeug.wrappers import Response

from control_plane.console.releases import actor_name, actor_names
from control_plane.console.signin import signed_in, visitor
from control_plane.console.web import console, page
from control_plane.context import session
from control_plane.errors import invalid
from control_plane.storage.models import AuditEvent
from control_plane.wire import MAX_ID

PAGE = 50
# Claims made on the public claim page carry no token; neither do the operator's commands.
TOKENLESS = {"claim.booked": "shopper (claim page)", "claim.refused": "shopper (claim page)"}


def _before() -> int | None:
    text = request.args.get("before")
    if text is None:
        return None
    if not (text.isascii() and text.isdecimal()) or not 1 <= int(text) <= MAX_ID:
        raise invalid("before", f"expected an event number, not {text!r}")
    return int(text)


def _details(details: dict[str, Any]) -> list[tuple[str, str]]:
    """Each detail as text: nested values as compact JSON."""
    return [(key, value if isinstance(value, str)
             else json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))
            for key, value in details.items()]


@console.get("/audit")
@signed_in("audit")
def audit_trail() -> Response:
    merchant_id = visitor().merchant_id
    query = (select(AuditEvent)
             .where(or_(AuditEvent.merchant_id == merchant_id, AuditEvent.merchant_id.is_(None)))
             .order_by(AuditEvent.id.desc()).limit(PAGE + 1))
    before = _before()
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(session().scalars(query))
    names = actor_names(session(), merchant_id)
    events = [{"id": event.id, "at": event.at, "kind": event.kind,
               "actor": (TOKENLESS.get(event.kind, "operator") if event.actor_token_id is None
                         else actor_name(names, event.actor_token_id)),
               "details": _details(event.details)} for event in rows[:PAGE]]
    older = events[-1]["id"] if len(rows) > PAGE else None
    return page("console/audit.html", events=events, older=older, newest=before is None)
