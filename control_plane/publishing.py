"""Publishing: a draft becomes a signed, numbered release that PoPs may run.

The order is the safety argument. Everything that can fail for a reason of the program —
building the bundle, loading it as a PoP would, and checking that the compiled module and the
reference interpreter give the same answer on every sample — happens before anything is
written; only then are the number taken, the release signed and the rows written, in one
transaction. A failed publish leaves no row behind, and two publishes at once get two numbers
(the unique (merchant, number) constraint decides, and the loser takes the next one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.context import control_plane
from control_plane.coupon_key import coupon_key
from control_plane.coupons import refresh_snapshot
from control_plane.errors import ApiError, invalid
from control_plane.releases import EVERY_POP
from control_plane.signing import sign
from control_plane.storage.models import ProgramVersion, Release, Rollout
from control_plane.versions import program_of, read_requests
from edge_worker.core.release import EvaluationError, TooLarge
from poprules import api
from poprules import bundle as fmt
from wasm_build.reference.quote import quote as reference_quote

_ATTEMPTS = 5  # for a release number taken by a concurrent publish


def build_checked(session: Session, version: ProgramVersion) -> bytes:
    """The bundle of a draft, once the module has been run like a PoP runs it and agrees
    with the reference interpreter on every sample (409 otherwise: never signed)."""
    program = program_of(version)
    keyring = control_plane().keyring.keys(session)
    bundle = api.build(program,
                       key=coupon_key(control_plane().settings.key_dir, version.merchant_id),
                       customer_keys=[(k.key_id, k.public_key) for k in keyring])
    release = api.load_release(bundle)
    for index, request in enumerate(read_requests(program, version.samples, "samples")):
        expected = reference_quote(program, request)
        try:
            got = release.quote(request, with_release=False)
        except (TooLarge, EvaluationError) as exc:
            raise ApiError(409, f"samples[{index}]", "the compiled module cannot quote this "
                           f"sample ({exc}); the release was not signed") from None
        if got != expected:
            raise ApiError(409, f"samples[{index}]", "the compiled module and the reference "
                           "interpreter disagree on this sample, so the release was not "
                           "signed; please report it to the poprules operators") from None
    return bundle


def publish(session: Session, version: ProgramVersion, *, group: str,
            actor_token_id: int | None) -> Release:
    """Build, check, sign and store a release of `version`, rolled out to `group`."""
    bundle = build_checked(session, version)

    def make(number: int) -> Release:
        return _release(version.merchant_id, number, version.id, bundle, None, actor_token_id)

    release = _store(session, version.merchant_id, make, group, actor_token_id,
                     audit.RELEASE_PUBLISHED, version=version.number)
    return release


def rollback(session: Session, earlier: Release, *, group: str,
             actor_token_id: int | None) -> Release:
    """A new release carrying `earlier`'s bundle: a higher number and a new signature, so a
    PoP that refuses lower numbers still takes it."""

    def make(number: int) -> Release:
        return _release(earlier.merchant_id, number, earlier.version_id, earlier.bundle,
                        earlier.number, actor_token_id)

    return _store(session, earlier.merchant_id, make, group, actor_token_id,
                  audit.RELEASE_ROLLED_BACK, to=earlier.number)


def roll_out(session: Session, release: Release, *, group: str,
             actor_token_id: int | None) -> Rollout:
    """Let PoPs of `group` (or every PoP) run `release`; nothing changes for a group that
    already runs a higher number."""
    rollout = Rollout(merchant_id=release.merchant_id, release_id=release.id, group=group,
                      created_by_token_id=actor_token_id)
    session.add(rollout)
    audit.record(session, audit.RELEASE_ROLLED_OUT, merchant_id=release.merchant_id,
                 actor_token_id=actor_token_id, release=release.number, group=group)
    if group == EVERY_POP:
        session.flush()
        refresh_snapshot(session, release.merchant_id, actor_token_id=actor_token_id)
    session.commit()
    return rollout


def groups_of(session: Session, release: Release) -> list[str]:
    return sorted(set(session.scalars(select(Rollout.group)
                                      .where(Rollout.release_id == release.id))))


def release_json(session: Session, release: Release) -> dict[str, Any]:
    from control_plane.wire import format_time

    version = session.get(ProgramVersion, release.version_id)
    assert version is not None
    return {"number": release.number, "version": version.number,
            "program": version.program_name, "hash": release.release_hash,
            "key_id": release.key_id, "signature": release.signature,
            "rollback_of": release.rollback_of, "groups": groups_of(session, release),
            "created_at": format_time(release.created_at),
            "created_by": (None if release.created_by_token_id is None
                           else f"token:{release.created_by_token_id}")}


def _release(merchant_id: int, number: int, version_id: int, bundle: bytes,
             rollback_of: int | None, actor_token_id: int | None) -> Release:
    release_hash = fmt.decode(bundle).release_hash
    signed = sign(merchant_id, number, release_hash)
    return Release(merchant_id=merchant_id, number=number, version_id=version_id,
                   rollback_of=rollback_of, release_hash=release_hash,
                   key_id=signed["key_id"], signature=signed["signature"], bundle=bundle,
                   created_by_token_id=actor_token_id)


def _store(session: Session, merchant_id: int, make: Callable[[int], Release], group: str,
           actor_token_id: int | None, kind: str, **details: Any) -> Release:
    """Take the next number and write the release, its rollout and its audit event at once."""
    for _ in range(_ATTEMPTS):
        number = (session.scalar(select(func.max(Release.number))
                                 .where(Release.merchant_id == merchant_id)) or 0) + 1
        release = make(number)
        try:
            session.add(release)
            session.flush()
            session.add(Rollout(merchant_id=merchant_id, release_id=release.id, group=group,
                                created_by_token_id=actor_token_id))
            audit.record(session, kind, merchant_id=merchant_id, actor_token_id=actor_token_id,
                         release=number, hash=release.release_hash, group=group, **details)
            if group == EVERY_POP:  # the live program's coupon limits may have changed
                refresh_snapshot(session, merchant_id, actor_token_id=actor_token_id)
            session.commit()
            return release
        except (IntegrityError, OperationalError):
            # Another publish took this number (or held SQLite's write lock): start over.
            session.rollback()
    raise ApiError(503, None, "too many publishes at once for this merchant; try again",
                   {"Retry-After": "1"})


def checked_group(value: Any, field: str = "group") -> str:
    """A rollout group: "*" for every PoP, or a name like "canary"."""
    if value is None:
        return EVERY_POP
    if not isinstance(value, str) or not (value == EVERY_POP or _is_name(value)):
        raise invalid(field, 'a group name (1-64 of a-z, 0-9, - and _) or "*" for every PoP')
    return value


def _is_name(value: str) -> bool:
    return 1 <= len(value) <= 64 and all(c.isascii() and (c.islower() or c.isdigit() or c in "-_")
                                          for c in value)
