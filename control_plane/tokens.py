"""Making merchants and tokens: shared by the API and the operator's bootstrap command, so
both write the same rows and the same audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.auth import SCOPES, new_token
from control_plane.storage.models import ApiToken, Merchant, utcnow
from control_plane.wire import format_time

NAME_LIMIT = 100  # merchant and token names


def create_merchant(session: Session, name: str) -> Merchant:
    merchant = Merchant(name=name)
    session.add(merchant)
    session.flush()
    audit.record(session, audit.MERCHANT_CREATED, merchant_id=merchant.id, name=name)
    return merchant


def create_token(session: Session, merchant: Merchant, scopes: frozenset[str], name: str,
                 *, actor_token_id: int | None) -> tuple[ApiToken, str]:
    """The new token's row and its secret (which exists nowhere else after this)."""
    secret, digest = new_token()
    ordered = [s for s in SCOPES if s in scopes]
    token = ApiToken(merchant_id=merchant.id, name=name, token_hash=digest,
                     scopes=" ".join(ordered))
    session.add(token)
    session.flush()
    audit.record(session, audit.TOKEN_CREATED, merchant_id=merchant.id,
                 actor_token_id=actor_token_id, token_id=token.id, name=name, scopes=ordered)
    return token, secret


def revoke_token(session: Session, token: ApiToken, *, actor_token_id: int | None) -> None:
    token.revoked_at = utcnow()
    audit.record(session, audit.TOKEN_REVOKED, merchant_id=token.merchant_id,
                 actor_token_id=actor_token_id, token_id=token.id)


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": [s for s in SCOPES if s in token.scope_set],
        "created_at": format_time(token.created_at),
        "revoked_at": _maybe_time(token.revoked_at),
    }


def merchant_json(merchant: Merchant) -> dict[str, Any]:
    return {"id": merchant.id, "name": merchant.name,
            "created_at": format_time(merchant.created_at)}


def _maybe_time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)
