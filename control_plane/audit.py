"""The audit trail: each event is written in the same transaction as the change it records,
so there is never a change without its event, nor an event without its change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from control_plane.storage.models import AuditEvent

# The kinds recorded.
MERCHANT_CREATED = "merchant.created"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
KEY_CREATED = "key.created"
KEY_ROTATED = "key.rotated"
POP_ENROLLMENT_TOKEN_CREATED = "pop.enrollment_token.created"
POP_ENROLLED = "pop.enrolled"
POP_MOVED = "pop.moved"
CUSTOMER_TOKEN_ISSUED = "customer_token.issued"
VERSION_CREATED = "version.created"
RELEASE_PUBLISHED = "release.published"
RELEASE_ROLLED_BACK = "release.rolled_back"
RELEASE_ROLLED_OUT = "release.rolled_out"
COUPONS_GENERATED = "coupons.generated"
REDEMPTIONS_SNAPSHOT = "redemptions.snapshot"
RECEIPT_FLAGGED = "receipt.flagged"
RECEIPT_CHAIN_GAP = "receipt.chain_gap"
RECEIPT_CHAIN_FORK = "receipt.chain_fork"
RECEIPT_HELD = "receipt.held"
CLAIM_BOOKED = "claim.booked"
CLAIM_REFUSED = "claim.refused"
THROTTLE_SET = "throttle.set"
CLOUDFLARE_UPLOADED = "cloudflare.uploaded"
CLOUDFLARE_DEPLOYED = "cloudflare.deployed"
CLOUDFLARE_PROMOTED = "cloudflare.promoted"
CLOUDFLARE_ROLLED_BACK = "cloudflare.rolled_back"


def record(session: Session, kind: str, *, merchant_id: int | None = None,
           actor_token_id: int | None = None, **details: Any) -> AuditEvent:
    """Add the event to the session (the caller commits it with the change)."""
    event = AuditEvent(kind=kind, merchant_id=merchant_id, actor_token_id=actor_token_id,
                       details=details)
    session.add(event)
    return event
