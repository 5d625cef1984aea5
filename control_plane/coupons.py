"""Coupon codes the control plane issues, the redemptions it counts, and the signed, versioned
snapshot of both that PoPs pull (spec section 6, docs/redemptions.md).

A code is shown once, when it is issued; only its keyed hash is kept, the same hash a PoP
computes from what a shopper types (`poprules.bundle.normal_code_hash` with the merchant's
coupon key), so a stolen database gives no usable codes. Which codes are spent follows from
the redemptions booked and the limits (`max_redemptions`, `per_customer`) of the program that
every PoP runs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.context import control_plane
from control_plane.coupon_key import coupon_key
from control_plane.errors import invalid
from control_plane.releases import live_release
from control_plane.signing import SNAPSHOT_CONTEXT, sign_document
from control_plane.storage.models import (
    CouponCode,
    Merchant,
    ProgramVersion,
    Redemption,
    RedemptionSnapshot,
    utcnow,
)
from control_plane.versions import program_of
from poprules import canonical
from poprules.bundle import normal_code_hash
from poprules.codes import normalize_code
from wasm_build.lang.model import CouponSet, Program

# No 0/O, 1/I/L: a code read aloud at a market stall or copied from paper stays one code.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
FORMAT = "poprules-redemptions/1"


@dataclass(frozen=True)
class Issued:
    """The codes one call issued (shown this once) and where the set stands."""

    codes: list[str]
    total: int  # codes of the set issued so far, these included
    count: int  # the set's `generate.count`


@dataclass(frozen=True)
class RedemptionState:
    """What a snapshot says, before it is numbered and signed."""

    program: str
    issued: dict[str, list[str]]  # set id -> code hashes, sorted
    spent: list[str]  # hashes of every known code of an exhausted set, sorted
    spent_sets: list[str]  # sets whose redemptions reached max_redemptions, sorted
    spent_by_customer: dict[str, list[str]]  # customer hash -> sets at per_customer, sorted


def lock_merchant(session: Session, merchant_id: int) -> None:
    """Serialise issuing and snapshot numbering per merchant until the transaction ends.

    An UPDATE that changes nothing is the one statement that locks on both databases: it
    takes the row lock on PostgreSQL and the write lock on SQLite, where a SELECT ... FOR
    UPDATE locks nothing. Without it, two calls at once could both read "300 issued" and
    issue the rest twice, or number two snapshots alike."""
    session.execute(update(Merchant).where(Merchant.id == merchant_id)
                    .values(name=Merchant.name).execution_options(synchronize_session=False))


def merchant_key(merchant_id: int) -> bytes:
    return coupon_key(control_plane().settings.key_dir, merchant_id)


def issue_codes(session: Session, version: ProgramVersion, coupon_set: CouponSet, *,
                actor_token_id: int | None) -> Issued:
    """Issue the codes of a `generate` set not issued yet, store their hashes, record the
    event and refresh the snapshot; the caller commits. Codes are counted per program name
    and set id, so a later version that raises `count` issues only the difference."""
    generate = coupon_set.generate
    assert generate is not None, "the caller checks that the set generates codes"
    merchant_id, program = version.merchant_id, program_of(version)
    lock_merchant(session, merchant_id)
    issued_before = session.scalar(
        select(func.count()).select_from(CouponCode).where(
            CouponCode.merchant_id == merchant_id, CouponCode.program_name == program.name,
            CouponCode.set_id == coupon_set.id)) or 0
    needed = max(0, generate.count - issued_before)
    if len(ALPHABET) ** generate.length < generate.count:
        raise invalid("set_id", f"the coupon set {coupon_set.id!r} cannot have "
                      f"{generate.count} different codes of {generate.length} characters; "
                      "make generate.length longer")
    key = merchant_key(merchant_id)
    codes = _draw(session, key, merchant_id, program, generate.prefix, generate.length, needed,
                  coupon_set.id)
    if codes:
        now = utcnow()
        session.execute(insert(CouponCode), [
            {"merchant_id": merchant_id, "program_name": program.name, "set_id": coupon_set.id,
             "code_hash": normal_code_hash(key, normalize_code(code)), "issued_at": now}
            for code in codes])
        audit.record(session, audit.COUPONS_GENERATED, merchant_id=merchant_id,
                     actor_token_id=actor_token_id, program=program.name,
                     version=version.number, set=coupon_set.id, issued=len(codes),
                     total=issued_before + len(codes))
        refresh_snapshot(session, merchant_id, actor_token_id=actor_token_id)
    return Issued(codes, issued_before + len(codes), generate.count)


def _draw(session: Session, key: bytes, merchant_id: int, program: Program, prefix: str,
          length: int, needed: int, set_id: str) -> list[str]:
    """`needed` fresh random codes whose hashes differ from each other, from every code the
    merchant was issued and from the program's literal codes (a hash names one code)."""
    if not needed:
        return []
    taken = set(session.scalars(select(CouponCode.code_hash)
                                .where(CouponCode.merchant_id == merchant_id)))
    taken.update(normal_code_hash(key, code) for s in program.coupons for code in s.codes)
    codes: list[str] = []
    # Bounded, so a set whose space is nearly used up fails rather than spins.
    for _ in range(10 * needed + 1000):
        code = prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))
        digest = normal_code_hash(key, normalize_code(code))
        if digest not in taken:
            taken.add(digest)
            codes.append(code)
            if len(codes) == needed:
                return codes
    raise invalid("set_id", f"too few unused codes are left for the coupon set {set_id!r}; "
                  "make generate.length longer")


def record_redemption(session: Session, merchant_id: int, program_name: str, set_id: str,
                      code_hash: str, customer: str | None) -> Redemption:
    """Count one use of a code in a booked checkout (`customer`: the customer token's subject
    hash, or None for a shopper without a token, who counts only against max_redemptions).

    It does not refresh the snapshot: a batch of receipts books many redemptions, and the
    snapshot is computed from all of them, so the caller calls `refresh_snapshot` once after
    the batch, in the same transaction."""
    row = Redemption(merchant_id=merchant_id, program_name=program_name, set_id=set_id,
                     code_hash=code_hash, customer=customer, at=utcnow())
    session.add(row)
    session.flush()
    return row


def redemption_state(session: Session, merchant_id: int, key: bytes) -> RedemptionState | None:
    """The state under the limits of the program every PoP runs, or None while no release
    is live (no PoP runs anything, so there is nothing to tell them)."""
    release = live_release(session, merchant_id)
    if release is None:
        return None
    version = session.get(ProgramVersion, release.version_id)
    assert version is not None, "a release's version is never deleted"
    program = program_of(version)
    of_program = (Redemption.merchant_id == merchant_id, Redemption.program_name == program.name)

    issued: dict[str, list[str]] = defaultdict(list)
    for set_id, code_hash in session.execute(
            select(CouponCode.set_id, CouponCode.code_hash)
            .where(CouponCode.merchant_id == merchant_id,
                   CouponCode.program_name == program.name)
            .order_by(CouponCode.set_id, CouponCode.code_hash)):
        issued[set_id].append(code_hash)

    uses: dict[str, int] = {set_id: n for set_id, n in session.execute(
        select(Redemption.set_id, func.count()).where(*of_program).group_by(Redemption.set_id))}
    exhausted = [s for s in program.coupons
                 if s.max_redemptions is not None and uses.get(s.id, 0) >= s.max_redemptions]
    spent_sets = {s.id for s in exhausted}
    spent = {normal_code_hash(key, code) for s in exhausted for code in s.codes}
    for s in exhausted:
        spent.update(issued.get(s.id, ()))

    per_customer = {s.id: s.per_customer for s in program.coupons
                    if s.per_customer is not None and s.id not in spent_sets}
    by_customer: dict[str, list[str]] = defaultdict(list)
    for customer, set_id, n in session.execute(
            select(Redemption.customer, Redemption.set_id, func.count())
            .where(*of_program, Redemption.customer.is_not(None))
            .group_by(Redemption.customer, Redemption.set_id)):
        limit = per_customer.get(set_id)
        if customer is not None and limit is not None and n >= limit:
            by_customer[customer].append(set_id)
    return RedemptionState(program.name, dict(issued), sorted(spent), sorted(spent_sets),
                           {c: sorted(sets) for c, sets in by_customer.items()})


def snapshot_body(merchant_id: int, version: int, state: RedemptionState) -> bytes:
    """The canonical bytes a snapshot's signature covers: sorted keys, no spaces, UTF-8, so
    one state has one encoding and its digest names it."""
    document: dict[str, Any] = {
        "format": FORMAT, "merchant": merchant_id, "version": version,
        "program": state.program, "issued": state.issued, "spent": state.spent,
        "spent_sets": state.spent_sets, "spent_by_customer": state.spent_by_customer,
    }
    return canonical.encode(document)


def refresh_snapshot(session: Session, merchant_id: int, *,
                     actor_token_id: int | None = None) -> RedemptionSnapshot | None:
    """Write the next snapshot version when the state differs from the latest one; the
    latest snapshot either way (None while no release is live and none was ever written).
    Call it, before committing, after anything that changes the state: codes issued,
    redemptions booked, a release rolled out to every PoP or rolled back (its limits or
    program may differ)."""
    lock_merchant(session, merchant_id)
    latest = latest_snapshot(session, merchant_id)
    state = redemption_state(session, merchant_id, merchant_key(merchant_id))
    if state is None:
        return latest
    if latest is not None and snapshot_body(merchant_id, latest.version, state) == latest.body:
        return latest
    version = 1 if latest is None else latest.version + 1
    body = snapshot_body(merchant_id, version, state)
    signed = sign_document(SNAPSHOT_CONTEXT, body)
    row = RedemptionSnapshot(merchant_id=merchant_id, version=version, body=body,
                             digest="sha256:" + hashlib.sha256(body).hexdigest(),
                             key_id=signed["key_id"], signature=signed["signature"],
                             created_at=utcnow())
    session.add(row)
    audit.record(session, audit.REDEMPTIONS_SNAPSHOT, merchant_id=merchant_id,
                 actor_token_id=actor_token_id, version=version, digest=row.digest,
                 program=state.program)
    session.flush()
    return row


def latest_snapshot(session: Session, merchant_id: int) -> RedemptionSnapshot | None:
    return session.scalar(select(RedemptionSnapshot)
                          .where(RedemptionSnapshot.merchant_id == merchant_id)
                          .order_by(RedemptionSnapshot.version.desc()).limit(1))
