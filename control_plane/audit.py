"""The audit trail: each event is written in the same transaction as the change it records,
so there is never a change without its event, nor an event without its change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from control_plane.storage.models import AuditEvent

# The kinds recorded so far; publish, rollback and PoP events join them.
MERCHANT_CREATED = "merchant.created"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
KEY_CREATED = "key.created"
KEY_ROTATED = "key.rotated"


def record(session: Session, kind: str, *, merchant_id: int | None = None,
           actor_token_id: int | None = None, **details: Any) -> AuditEvent:
    """Add the event to the session (the caller commits it with the change)."""
    event = AuditEvent(kind=kind, merchant_id=merchant_id, actor_token_id=actor_token_id,
                       details=details)
    session.add(event)
    return event
