"""PoPs: their enrollment and the release each one pulls.

A merchant makes a one-time enrollment secret (`pre_...`) for a named PoP of a rollout group
and hands it to whoever sets the PoP up; the PoP trades it, with its own Ed25519 public key
(which will sign its receipts), for its lasting secret (`prp_...`, control_plane/pop_auth.py).
Both secrets are shown once and stored as SHA-256 only. A PoP then polls for the release its
group runs, which costs a 304 when nothing changed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from nacl.bindings import crypto_core_ed25519_is_valid_point
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.errors import ApiError, invalid
from control_plane.pop_auth import new_pop_token
from control_plane.releases import live_release
from control_plane.storage.models import EnrollmentToken, Pop, Release, utcnow
from control_plane.wire import format_time

ENROLLMENT_PREFIX = "pre_"
NAME = re.compile(r"[a-z0-9_-]{1,64}")  # PoP and group names
DEFAULT_GROUP = "default"
SEEN_EVERY = timedelta(minutes=1)  # how stale last_seen_at may be: one write a minute, not a poll


def new_enrollment_token() -> tuple[str, str]:
    token = ENROLLMENT_PREFIX + secrets.token_urlsafe(32)
    return token, _digest(token)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_public_key(text: str) -> bool:
    """A PoP's key must be a point a signature can be checked against: 64 hex digits of a
    point on the curve, in the prime-order subgroup (a small-order key would let anyone
    forge that PoP's receipts)."""
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        return False
    return bool(crypto_core_ed25519_is_valid_point(bytes.fromhex(text)))


def create_enrollment_token(session: Session, merchant_id: int, pop_name: str, group: str,
                            expires_in: int, *, actor_token_id: int
                            ) -> tuple[EnrollmentToken, str]:
    """A new enrollment token and its secret (which exists nowhere else after this); 409 when
    that PoP is enrolled already. The caller commits."""
    if _pop_named(session, merchant_id, pop_name) is not None:
        raise ApiError(409, "pop", f"a PoP named {pop_name!r} is enrolled already")
    secret, digest = new_enrollment_token()
    row = EnrollmentToken(merchant_id=merchant_id, token_hash=digest, pop_name=pop_name,
                          group=group, expires_at=utcnow() + timedelta(seconds=expires_in),
                          created_by_token_id=actor_token_id)
    session.add(row)
    session.flush()
    audit.record(session, audit.POP_ENROLLMENT_TOKEN_CREATED, merchant_id=merchant_id,
                 actor_token_id=actor_token_id, enrollment_token_id=row.id, pop=pop_name,
                 group=group, expires_at=format_time(row.expires_at))
    return row, secret


def _pop_named(session: Session, merchant_id: int, name: str) -> Pop | None:
    return session.scalar(select(Pop).where(Pop.merchant_id == merchant_id, Pop.name == name))


def _refused(message: str) -> ApiError:
    return ApiError(401, "enrollment_token", message)


def enroll(session: Session, secret: str, public_key: str) -> tuple[Pop, str]:
    """Trade an enrollment secret and the PoP's public key (lowercase hex) for a PoP and its
    secret, and commit. The secret is checked first: without a live one, nothing about the
    key is worth telling. The token is spent
    first, by a conditional update in the same transaction as the PoP's row: of PoPs racing
    with one token exactly one gets past it (the others wait on its row lock, then find it
    spent), and a refusal after it rolls back, leaving the token unspent."""
    row = session.scalar(select(EnrollmentToken)
                         .where(EnrollmentToken.token_hash == _digest(secret)))
    now = utcnow()
    if row is None:
        raise _refused("unknown enrollment token")
    if row.used_at is not None:
        raise _refused("this enrollment token has been used already; make a new one")
    if row.expires_at <= now:
        raise _refused("this enrollment token has expired; make a new one")
    if not is_public_key(public_key):  # checked before the token is spent, so it is not lost
        raise invalid("public_key", "expected the PoP's Ed25519 public key: 64 hex digits of "
                      "a valid point")
    spent = session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == row.id, EnrollmentToken.used_at.is_(None),
               EnrollmentToken.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False))
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise _refused("this enrollment token has been used already; make a new one")
    taken = ApiError(409, "enrollment_token", f"a PoP named {row.pop_name!r} is enrolled "
                     "already; this token stays unused")
    if _pop_named(session, row.merchant_id, row.pop_name) is not None:
        session.rollback()
        raise taken
    pop_secret, pop_digest = new_pop_token()
    pop = Pop(merchant_id=row.merchant_id, name=row.pop_name, group=row.group,
              public_key=public_key, token_hash=pop_digest, enrolled_at=now)
    session.add(pop)
    try:
        session.flush()
    except IntegrityError:  # the same name enrolled with another token meanwhile
        session.rollback()
        raise taken from None
    session.execute(update(EnrollmentToken).where(EnrollmentToken.id == row.id)
                    .values(pop_id=pop.id).execution_options(synchronize_session=False))
    audit.record(session, audit.POP_ENROLLED, merchant_id=pop.merchant_id,
                 actor_token_id=row.created_by_token_id, pop_id=pop.id, name=pop.name,
                 group=pop.group, public_key=public_key, enrollment_token_id=row.id)
    session.commit()
    return pop, pop_secret


def move(session: Session, pop: Pop, group: str, *, actor_token_id: int) -> None:
    """Put a PoP in another rollout group (no change, no event). The caller commits."""
    if pop.group != group:
        audit.record(session, audit.POP_MOVED, merchant_id=pop.merchant_id,
                     actor_token_id=actor_token_id, pop_id=pop.id, name=pop.name,
                     previous_group=pop.group, group=group)
        pop.group = group


def pop_json(pop: Pop) -> dict[str, Any]:
    return {"id": pop.id, "name": pop.name, "group": pop.group, "public_key": pop.public_key,
            "enrolled_at": format_time(pop.enrolled_at),
            "last_seen_at": None if pop.last_seen_at is None else format_time(pop.last_seen_at)}


def mark_seen(session: Session, pop: Pop, now: datetime) -> None:
    """Record that the PoP called, at most once a minute: PoPs poll often, and a write per
    poll would make every 304 a transaction. Commits; racing polls write once or twice."""
    if pop.last_seen_at is not None and now - pop.last_seen_at < SEEN_EVERY:
        return
    session.execute(update(Pop)
                    .where(Pop.id == pop.id, or_(Pop.last_seen_at.is_(None),
                                                 Pop.last_seen_at <= now - SEEN_EVERY))
                    .values(last_seen_at=now).execution_options(synchronize_session=False))
    session.commit()


class ReleaseHead(NamedTuple):
    """What a release's pull headers need, without its bundle."""

    id: int
    number: int
    release_hash: str
    key_id: str
    signature: str


def live_release_head(session: Session, merchant_id: int, group: str) -> ReleaseHead | None:
    """`releases.live_release` as the few short columns a poll needs: the bundle column is
    deferred, so a poll that ends in a 304 never reads it."""
    release = live_release(session, merchant_id, group)
    if release is None:
        return None
    return ReleaseHead(release.id, release.number, release.release_hash, release.key_id,
                       release.signature)


def release_bundle(session: Session, release_id: int) -> bytes:
    bundle: bytes = session.scalars(select(Release.bundle).where(Release.id == release_id)).one()
    return bundle
