"""Receipt ingestion: what the control plane makes of the receipts a PoP uploads
(docs/receipts.md).

The transport secret says which PoP is calling; each receipt must also carry that PoP's own
Ed25519 signature over its exact bytes, so what is booked is what the PoP signed, whoever
carried it. A receipt is then judged on its own, so one bad receipt never blocks the rest of
its batch (a batch is one transaction, committed once: `ingest`):

- rejected (nothing stored): not a receipt, another PoP's or merchant's, a bad signature, or
  other content under an id already received (altered);
- duplicate: the same bytes again, answered as the first time, changing nothing;
- flagged (stored, never booked): the release it names does not reproduce its amounts, or
  its chain link names another receipt than the one before it (a fork), or a refund that
  does not reverse exactly what its sale gave;
- held (stored, booked once it may be): the receipt before it has not arrived (a gap), a
  refund's sale is not booked yet, a coupon it used was redeemed up to its limit meanwhile
  (offline double use), or a throttle of the ledger;
- booked: in the ledger (control_plane.ledger), its coupons counted as redeemed.

Every step that takes a decision under a limit (chain, coupons, ledger) runs with the
merchant locked (`coupons.lock_merchant`), so two uploads at once, from one PoP or two, never
book one coupon twice or leave a receipt waiting for a predecessor that arrived meanwhile.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane import audit, coupons, ledger
from control_plane.storage.models import Pop, Receipt, RedemptionSnapshot, Release
from control_plane.wire import MAX_ID
from edge_worker.core.checkout import reversal
from edge_worker.core.engine import EngineError
from edge_worker.core.redemptions import FORMAT as SNAPSHOT_FORMAT
from edge_worker.core.redemptions import Redemptions, SnapshotError
from edge_worker.core.release import EvaluationError
from edge_worker.core.release import Release as RuleRelease
from poprules import api, canonical
from poprules import receipt as fmt
from poprules.bundle import normal_code_hash
from poprules.codes import normalize_code
from poprules.errors import InputError

MAX_BATCH = 500
BOOKED, FLAGGED, HELD = "booked", "flagged", "held"
DUPLICATE, REJECTED = "duplicate", "rejected"
ITEM_KEYS = frozenset({"body", "signature"})

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{128}")
_RELEASE_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_RECEIPT_ID = re.compile(r"[1-9][0-9]{0,18}-[1-9][0-9]{0,18}")


@dataclass(frozen=True)
class Result:
    """The answer for one receipt of a batch."""

    id: str | None
    status: str
    reason: str | None = None
    field: str | None = None
    original: str | None = None  # a duplicate's stored status

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"id": self.id, "status": self.status}
        for key in ("reason", "field", "original"):
            value = getattr(self, key)
            if value is not None:
                answer[key] = value
        return answer


@dataclass(frozen=True)
class Uploader:
    """The calling PoP as plain values: its row expires at every commit of the batch."""

    pop_id: int
    merchant_id: int
    public_key: str


@dataclass
class _Batch:
    """What one upload learns as it goes, in its one transaction."""

    now: datetime
    redeemed: bool = False  # some coupon was redeemed: the snapshot must be refreshed
    stored: dict[str, Receipt] = field(default_factory=dict)  # by receipt id, once locked
    gaps: set[int] = field(default_factory=set)  # seqs of the PoP's receipts held in a gap
    waiting: set[str] = field(default_factory=set)  # reasons of refunds held for their sale
    issued: dict[tuple[int | None, str], dict[str, list[str]] | None] = field(
        default_factory=dict)  # _issued by snapshot and program


@dataclass(frozen=True)
class _Item:
    index: int
    body: bytes
    signature: str
    fields: dict[str, Any]


def ingest(session: Session, pop: Pop, items: list[Any]) -> list[Result]:
    """The result of each item, in the order given; receipts are taken in seq order, so a
    batch that holds a receipt and the one before it books both whatever their order.

    The batch is one transaction, committed once at the end: a commit is a disk sync, and
    one per receipt was most of what ingestion cost. What each receipt decides is still its
    own (a bad receipt is a result, never a failed batch); only a fault of ours fails the
    whole batch, and then nothing of it is written and the PoP sends it again."""
    uploader = Uploader(pop.id, pop.merchant_id, pop.public_key)
    batch = _Batch(ledger.now())
    results: list[Result | None] = [None] * len(items)
    readable: list[_Item] = []
    for index, item in enumerate(items):
        try:
            readable.append(_read(index, item))
        except fmt.ReceiptError as exc:
            results[index] = Result(None, REJECTED, exc.message, exc.field)
    readable.sort(key=lambda i: (i.fields["seq"], i.index))
    # Before the lock: the checks that decide nothing under a limit, and the costly part,
    # a run of the rule module for each sale.
    seen = _stored_many(session, uploader.merchant_id, [i.fields["id"] for i in readable])
    admissible: list[tuple[_Item, str | None]] = []
    for item in readable:
        refused = _examine(session, uploader, item, seen)
        if refused is not None:
            results[item.index] = refused
        elif item.fields["kind"] == "sale":
            admissible.append((item, _verify_sale(session, uploader.merchant_id, item.fields,
                                                  batch)))
        else:
            admissible.append((item, None))
    if admissible:
        _prepare(session, uploader, batch, [item.fields["id"] for item, _ in admissible])
        for item, flag in admissible:
            results[item.index] = _admit(session, uploader, item, flag, batch)
        if batch.redeemed:
            coupons.refresh_snapshot(session, uploader.merchant_id)
    session.commit()
    return [result for result in results if result is not None]


def _read(index: int, item: Any) -> _Item:
    if not isinstance(item, dict):
        raise fmt.ReceiptError("body", 'each receipt is {"body": "...", "signature": "..."}')
    for key in item:
        if key not in ITEM_KEYS:
            raise fmt.ReceiptError(key, "unknown field; expected body and signature")
    body, signature = item.get("body"), item.get("signature")
    if not isinstance(body, str):
        raise fmt.ReceiptError("body", "required: the receipt's canonical JSON text")
    if not isinstance(signature, str):
        raise fmt.ReceiptError("signature", "required: 128 hex digits")
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:
        raise fmt.ReceiptError("body", "not UTF-8 text") from None
    return _Item(index, data, signature, fmt.decode(data))


def _examine(session: Session, uploader: Uploader, item: _Item,
             seen: dict[str, Receipt]) -> Result | None:
    """The answer for a receipt that is refused or was received before, else None."""
    fields, merchant_id = item.fields, uploader.merchant_id
    rid = fields["id"]
    if fields["merchant"] != merchant_id:
        return Result(rid, REJECTED, "a receipt of another merchant", "merchant")
    if fields["pop"] != uploader.pop_id:
        return Result(rid, REJECTED, "a receipt of another PoP than the caller", "pop")
    if fields["seq"] > MAX_ID:
        return Result(rid, REJECTED, f"at most {MAX_ID}", "seq")
    if not _signed(uploader.public_key, item.body, item.signature):
        _event(session, audit.RECEIPT_FLAGGED, uploader, fields, stored=False,
               reason="a bad signature: forged or altered in transit; not stored")
        return Result(rid, REJECTED, "not signed by this PoP's enrolled key (forged or altered)",
                      "signature")
    if rid in seen:
        return _replay(session, uploader, fields, seen[rid], fmt.digest(item.body))
    try:
        (_check_sale if fields["kind"] == "sale" else _check_refund)(fields)
    except fmt.ReceiptError as exc:
        return Result(rid, REJECTED, exc.message, exc.field)
    return None


def _prepare(session: Session, uploader: Uploader, batch: _Batch, ids: list[str]) -> None:
    """Lock the merchant, then read once what every receipt of the batch asks about: which
    ids are stored by now (another upload may have stored some since the first look), which
    of the PoP's receipts wait in a gap, and which refunds wait for their sale."""
    coupons.lock_merchant(session, uploader.merchant_id)
    batch.stored = _stored_many(session, uploader.merchant_id, ids)
    held = session.execute(select(Receipt.pop_id, Receipt.seq, Receipt.kind, Receipt.reason)
                           .where(Receipt.merchant_id == uploader.merchant_id,
                                  Receipt.status == HELD)).all()
    for pop_id, seq, kind, reason in held:
        if pop_id == uploader.pop_id and reason is not None and reason.endswith(GAP):
            batch.gaps.add(seq)
        if kind == "refund" and reason is not None:
            batch.waiting.add(reason)


def _admit(session: Session, uploader: Uploader, item: _Item, flag: str | None,
           batch: _Batch) -> Result:
    """Store a receipt that passed `_examine` (`flag`: why its amounts do not stand, or None)
    and book it, hold it or flag it; the merchant is locked."""
    fields, merchant_id = item.fields, uploader.merchant_id
    rid = fields["id"]
    digest = fmt.digest(item.body)
    stored = batch.stored.get(rid)
    if stored is not None:
        return _replay(session, uploader, fields, stored, digest)
    release = fields.get("release") if fields["kind"] == "sale" else None
    row = Receipt(merchant_id=merchant_id, pop_id=uploader.pop_id, receipt_id=rid,
                  seq=fields["seq"], prev=fields["prev"], digest=digest, kind=fields["kind"],
                  release_hash=release["hash"] if release else "",
                  customer=fields.get("customer") if release else None, body=item.body,
                  signature=item.signature, status=HELD, reason=None,
                  received_at=batch.now)
    session.add(row)
    session.flush()
    batch.stored[rid] = row
    link = _link(session, row, batch)
    if flag is not None:
        _mark(session, row, FLAGGED, flag, audit.RECEIPT_FLAGGED)
    elif link is not None:
        status, reason = link
        _mark(session, row, status, reason,
              audit.RECEIPT_CHAIN_FORK if status == FLAGGED else audit.RECEIPT_CHAIN_GAP)
        if status == HELD:
            batch.gaps.add(row.seq)
    else:
        _settle(session, row, fields, batch)
    _follow(session, row, batch)
    return Result(rid, row.status, row.reason)


def _signed(public_key: str, body: bytes, signature: str) -> bool:
    if not _SIGNATURE.fullmatch(signature):
        return False
    try:
        VerifyKey(bytes.fromhex(public_key)).verify(fmt.statement(body),
                                                    bytes.fromhex(signature))
    except (BadSignatureError, ValueError):
        return False
    return True


def _stored(session: Session, merchant_id: int, receipt_id: str) -> Receipt | None:
    return session.scalar(select(Receipt).where(Receipt.merchant_id == merchant_id,
                                                Receipt.receipt_id == receipt_id))


def _stored_many(session: Session, merchant_id: int, ids: list[str]) -> dict[str, Receipt]:
    if not ids:
        return {}
    rows = session.scalars(select(Receipt).where(Receipt.merchant_id == merchant_id,
                                                 Receipt.receipt_id.in_(set(ids))))
    return {row.receipt_id: row for row in rows}


def _replay(session: Session, uploader: Uploader, fields: dict[str, Any], stored: Receipt,
            digest: str) -> Result:
    """A receipt id seen before: the same bytes are a replay, answered as the first time;
    other bytes under the id are an altered copy, and the first stands."""
    if stored.digest == digest:
        return Result(stored.receipt_id, DUPLICATE, stored.reason, original=stored.status)
    _event(session, audit.RECEIPT_FLAGGED, uploader, fields, stored=False,
           reason=f"other content under receipt id {stored.receipt_id} (altered); the first "
                  "one stands")
    return Result(stored.receipt_id, REJECTED, f"receipt {stored.receipt_id} was received "
                  "before with other content (altered); the first one stands", "body")


# -- shape ------------------------------------------------------------------------------------

def _check_sale(fields: dict[str, Any]) -> None:
    release = _required(fields, "release")
    if not isinstance(release, dict) or set(release) != {"number", "hash"}:
        raise fmt.ReceiptError("release", 'expected {"number", "hash"}')
    if type(release["number"]) is not int or not 1 <= release["number"] <= MAX_ID:
        raise fmt.ReceiptError("release.number", f"a whole number from 1 to {MAX_ID}")
    if not isinstance(release["hash"], str) or not _RELEASE_HASH.fullmatch(release["hash"]):
        raise fmt.ReceiptError("release.hash", "sha256: and 64 lower-case hex digits")
    for name in ("request", "quote"):
        if not isinstance(_required(fields, name), dict):
            raise fmt.ReceiptError(name, "a JSON object")
    if not isinstance(_required(fields, "quote_id"), str):
        raise fmt.ReceiptError("quote_id", "a string")
    for name in ("customer", "claim"):
        value = _required(fields, name)
        if value is not None and not (isinstance(value, str) and _HEX64.fullmatch(value)):
            raise fmt.ReceiptError(name, "null or 64 lower-case hex digits")
    snapshot = _required(fields, "snapshot")
    if snapshot is not None and (type(snapshot) is not int or not 1 <= snapshot <= MAX_ID):
        raise fmt.ReceiptError("snapshot", f"null or a whole number from 1 to {MAX_ID}")
    spent = _required(fields, "spent")
    if not isinstance(spent, list) or not all(isinstance(s, str) for s in spent) \
            or spent != sorted(set(spent)):
        raise fmt.ReceiptError("spent", "a sorted list of distinct code hashes")


def _check_refund(fields: dict[str, Any]) -> None:
    refund_of = _required(fields, "refund_of")
    if not isinstance(refund_of, str) or not _RECEIPT_ID.fullmatch(refund_of):
        raise fmt.ReceiptError("refund_of", "a receipt id, <pop>-<seq>")
    lines = _required(fields, "lines")
    if not isinstance(lines, list) or not lines \
            or not all(type(i) is int and i >= 0 for i in lines) or lines != sorted(set(lines)):
        raise fmt.ReceiptError("lines", "a non-empty sorted list of distinct line indices")
    reversal = _required(fields, "reversal")
    if not isinstance(reversal, dict) or set(reversal) != {"lines", "totals", "wallet",
                                                           "points"}:
        raise fmt.ReceiptError("reversal", 'expected {"lines", "totals", "wallet", "points"}')
    if not isinstance(reversal["lines"], list) or not isinstance(reversal["totals"], dict):
        raise fmt.ReceiptError("reversal", "lines is a list and totals an object")
    if type(reversal["points"]) is not int:
        raise fmt.ReceiptError("reversal.points", "a whole number")
    wallet = reversal["wallet"]
    if not isinstance(wallet, list) or not all(
            isinstance(w, dict) and set(w) == {"rule", "amount"} and isinstance(w["rule"], str)
            and type(w["amount"]) is int and w["amount"] >= 0 for w in wallet):
        raise fmt.ReceiptError("reversal.wallet", 'a list of {"rule", "amount" (from 0)}')
    if len({w["rule"] for w in wallet}) != len(wallet):
        raise fmt.ReceiptError("reversal.wallet", "one entry per rule")


def _required(fields: dict[str, Any], name: str) -> Any:
    if name not in fields:
        raise fmt.ReceiptError(name, f"required in a {fields['kind']} receipt")
    return fields[name]


# -- re-running a sale ------------------------------------------------------------------------

_CACHE_SIZE = 4  # releases kept loaded: a merchant's PoPs run one or two at a time
_cache: OrderedDict[tuple[int, int, str], RuleRelease] = OrderedDict()
_snapshots: OrderedDict[str, tuple[str, dict[str, list[str]]]] = OrderedDict()
_cache_lock = threading.Lock()


def _rule_release(session: Session, merchant_id: int, number: int,
                  release_hash: str) -> RuleRelease | None:
    """The merchant's release `number`, loaded to run, if its hash is `release_hash`."""
    key = (merchant_id, number, release_hash)
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is not None:
            _cache.move_to_end(key)
            return loaded
    row = session.scalar(select(Release).where(Release.merchant_id == merchant_id,
                                               Release.number == number,
                                               Release.release_hash == release_hash))
    if row is None:
        return None
    loaded = api.load_release(row.bundle)
    with _cache_lock:
        _cache[key] = loaded
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def _issued(session: Session, merchant_id: int, version: int | None,
            program: str) -> dict[str, list[str]] | None:
    """The generated codes the PoP knew: those of the snapshot it names (none without one);
    None when no such snapshot was ever published."""
    if version is None:
        return {}
    # Cached by the snapshot's digest, not its number: what a number names is up to the
    # database, and the cache outlives any one database (a test's, or a restored backup).
    digest = session.scalar(select(RedemptionSnapshot.digest).where(
        RedemptionSnapshot.merchant_id == merchant_id, RedemptionSnapshot.version == version))
    if digest is None:
        return None
    with _cache_lock:
        known = _snapshots.get(digest)
    if known is None:
        body = session.scalar(select(RedemptionSnapshot.body).where(
            RedemptionSnapshot.merchant_id == merchant_id, RedemptionSnapshot.version == version))
        assert body is not None
        document = json.loads(body)
        known = (document["program"], document["issued"])
        with _cache_lock:
            _snapshots[digest] = known
            while len(_snapshots) > 4 * _CACHE_SIZE:
                _snapshots.popitem(last=False)
    # A PoP refuses a snapshot of another program than its release's: it knew none.
    return known[1] if known[0] == program else {}


def _batch_issued(session: Session, merchant_id: int, version: int | None, program: str,
                  batch: _Batch) -> dict[str, list[str]] | None:
    """`_issued`, asked once per batch: most of a batch's sales name one snapshot."""
    key = (version, program)
    if key not in batch.issued:
        batch.issued[key] = _issued(session, merchant_id, version, program)
    return batch.issued[key]


def _verify_sale(session: Session, merchant_id: int, fields: dict[str, Any],
                 batch: _Batch) -> str | None:
    """Why the sale's amounts do not stand, or None: its request is quoted again on the
    release it names, with the codes the PoP knew and treated as spent, and the quote must
    be the receipt's to the last key."""
    number, release_hash = fields["release"]["number"], fields["release"]["hash"]
    release = _rule_release(session, merchant_id, number, release_hash)
    if release is None:
        return f"release {number} with hash {release_hash} is not one of this merchant's"
    issued = _batch_issued(session, merchant_id, fields["snapshot"], release.program, batch)
    if issued is None:
        return f"redemption snapshot {fields['snapshot']} was never published"
    state = _state(merchant_id, fields, release, issued)
    try:
        request = release.read_request(fields["request"])
        quote = release.quote(request, redemptions=state, with_release=False)
    except InputError as exc:
        return f"release {number} refuses the request: {exc.field}: {exc.message}"
    except (EvaluationError, EngineError) as exc:
        return f"release {number} cannot evaluate the request: {exc}"
    if fmt.encode(quote) == fmt.encode(fields["quote"]):
        return None
    return _difference(number, fields["quote"], quote)


def _state(merchant_id: int, fields: dict[str, Any], release: RuleRelease,
           issued: dict[str, list[str]]) -> Redemptions:
    """The redemption state as the PoP saw it: the issued codes of its snapshot, and the
    codes it treated as spent (`spent` already folds in the limits and the customer)."""
    document = {"format": SNAPSHOT_FORMAT, "merchant": merchant_id,
                "version": fields["snapshot"] or 1, "program": release.program,
                "issued": issued, "spent": fields["spent"], "spent_sets": [],
                "spent_by_customer": {}}
    body = canonical.encode(document)
    try:
        return Redemptions.from_snapshot(body, release=release, merchant=merchant_id)
    except SnapshotError as exc:  # a snapshot the control plane signed always reads
        raise AssertionError(f"published snapshot unreadable: {exc}") from None


def _difference(number: int, claimed: dict[str, Any], computed: dict[str, Any]) -> str:
    """`amounts differ from release N`, with the totals that differ and the other parts."""
    given = claimed.get("totals")
    totals: dict[str, Any] = given if isinstance(given, dict) else {}
    changed = [f"{key} {totals.get(key)} on the receipt, {value} by the release"
               for key, value in computed["totals"].items() if totals.get(key) != value]
    parts = sorted(key for key in set(claimed) | set(computed)
                   if key != "totals" and fmt.encode({"v": claimed.get(key)})
                   != fmt.encode({"v": computed.get(key)}))
    detail = "; ".join(filter(None, ["totals: " + ", ".join(changed) if changed else "",
                                     "also " + ", ".join(parts) if parts else ""]))
    return f"amounts differ from release {number}" + (f" ({detail})" if detail else "")


# -- booking ----------------------------------------------------------------------------------

def _settle(session: Session, row: Receipt, fields: dict[str, Any], batch: _Batch) -> None:
    """Book a receipt whose signature, amounts and chain link stand, unless it must wait."""
    redeemed: list[tuple[str, str, str]] = []
    if row.kind == "refund":
        outcome = _check_reversal(session, row, fields)
        if outcome is not None:
            status, reason = outcome
            _mark(session, row, status, reason,
                  audit.RECEIPT_HELD if status == HELD else audit.RECEIPT_FLAGGED)
            if status == HELD:
                batch.waiting.add(reason)
            return
    else:
        redeemed = _redeemed(session, row.merchant_id, fields, batch)
        used = _used_up(session, row.merchant_id, redeemed, row.customer)
        if used is not None:
            _mark(session, row, HELD, f"coupon {used} already redeemed (offline double use)",
                  audit.RECEIPT_HELD)
            return
    held = ledger.book(session, row, fields, batch.now)
    if held is not None:
        _mark(session, row, HELD, held, audit.RECEIPT_HELD)
        return
    row.status, row.reason = BOOKED, None
    for program, set_id, code_hash in redeemed:
        coupons.record_redemption(session, row.merchant_id, program, set_id, code_hash,
                                  row.customer)
        batch.redeemed = True


def _redeemed(session: Session, merchant_id: int, fields: dict[str, Any],
              batch: _Batch) -> list[tuple[str, str, str]]:
    """(program, set id, code hash) of each code the sale's quote found valid, once each."""
    reference = fields["release"]
    release = _rule_release(session, merchant_id, reference["number"], reference["hash"])
    assert release is not None, "a sale's release was checked when it arrived"
    issued = _batch_issued(session, merchant_id, fields["snapshot"], release.program,
                           batch) or {}
    of_issued = {code: set_id for set_id, codes in issued.items() for code in codes}
    key, literal = release.bundle.coupons["key"], release.bundle.coupons["codes"]
    sets = release.bundle.tables["coupon_sets"]
    found: dict[str, tuple[str, str, str]] = {}
    for coupon in fields["quote"].get("coupons", []):
        if coupon.get("status") != "valid":
            continue
        code_hash = normal_code_hash(key, normalize_code(coupon["code"]))
        index = literal.get(code_hash)
        set_id = sets[index] if index is not None else of_issued.get(code_hash)
        if set_id is not None:
            found.setdefault(code_hash, (release.program, set_id, code_hash))
    return list(found.values())


def _used_up(session: Session, merchant_id: int, redeemed: list[tuple[str, str, str]],
             customer: str | None) -> str | None:
    """The first coupon set among `redeemed` that had reached its limit before this receipt,
    overall or for this customer: a PoP that was offline could not know it."""
    if not redeemed:
        return None
    state = coupons.redemption_state(session, merchant_id, coupons.merchant_key(merchant_id))
    if state is None:
        return None
    mine = state.spent_by_customer.get(customer, []) if customer is not None else []
    for program, set_id, _ in redeemed:
        if program == state.program and (set_id in state.spent_sets or set_id in mine):
            return set_id
    return None


def _check_reversal(session: Session, row: Receipt,
                    fields: dict[str, Any]) -> tuple[str, str] | None:
    """Why a refund cannot be booked now: its sale is not booked yet (held), or it does not
    reverse exactly the sale's lines, or reverses some twice (flagged)."""
    sale_id = fields["refund_of"]
    sale = _stored(session, row.merchant_id, sale_id)
    if sale is None or sale.status == HELD:
        return HELD, _waiting_for_sale(sale_id)
    row.release_hash, row.customer = sale.release_hash, sale.customer
    if sale.kind != "sale":
        return FLAGGED, f"receipt {sale_id} is a refund; only a sale is refunded"
    if sale.status != BOOKED:
        return FLAGGED, f"receipt {sale_id} was flagged, not booked: nothing to refund"
    quote = fmt.decode(sale.body)["quote"]
    lines: list[dict[str, Any]] = quote["lines"]
    refunded = fields["lines"]
    if refunded[-1] >= len(lines):
        return FLAGGED, f"receipt {sale_id} has {len(lines)} lines; line {refunded[-1]} is none"
    earlier = _refunds_of(session, sale, row.id)
    done = {i for refund in earlier for i in refund["lines"]}
    if again := sorted(done & set(refunded)):
        return FLAGGED, (f"line(s) {', '.join(map(str, again))} of receipt {sale_id} were "
                         "refunded already")
    try:
        expected = reversal(quote, refunded)
    except ValueError as exc:  # a sale the release reproduced always splits
        return FLAGGED, f"receipt {sale_id}'s wallet cannot be split by line: {exc}"
    given = fields["reversal"]
    wrong = [key for key in ("lines", "totals", "wallet", "points")
             if fmt.encode({"v": given[key]}) != fmt.encode({"v": expected[key]})]
    if wrong:
        return FLAGGED, (f"the reversal's {', '.join(wrong)} differ from what lines "
                         f"{', '.join(map(str, refunded))} of receipt {sale_id} carry")
    return None


def _refunds_of(session: Session, sale: Receipt, other_than: int) -> list[dict[str, Any]]:
    """The booked refunds of `sale` (fields), found among the refunds that share its release
    and customer, which a refund takes from its sale when it is booked."""
    customer = (Receipt.customer.is_(None) if sale.customer is None
                else Receipt.customer == sale.customer)
    rows = session.scalars(select(Receipt).where(
        Receipt.merchant_id == sale.merchant_id, Receipt.kind == "refund",
        Receipt.status == BOOKED, Receipt.release_hash == sale.release_hash, customer,
        Receipt.id != other_than).order_by(Receipt.id))
    decoded = (fmt.decode(row.body) for row in rows)
    return [fields for fields in decoded if fields["refund_of"] == sale.receipt_id]


# -- chain ------------------------------------------------------------------------------------

GAP = ", missing from the chain before it"  # the end of every reason to wait for one


def gap_reason(pop_id: int, seq: int) -> str:
    """Why a receipt waits: receipt `seq` of its PoP has not arrived."""
    return f"waiting for receipt {fmt.receipt_id(pop_id, seq)}{GAP}"


def _in_gap(row: Receipt) -> bool:
    return row.status == HELD and row.reason is not None and row.reason.endswith(GAP)


def _waiting_for_sale(sale_id: str) -> str:
    return f"waiting for receipt {sale_id}, the sale it refunds, to be booked"


def _link(session: Session, row: Receipt, batch: _Batch) -> tuple[str, str] | None:
    """None when `prev` names the receipt before and the chain up to it is whole; else the
    status and reason: flagged for a predecessor whose digest differs (a fork), held while a
    receipt before it has not arrived (a gap), so a chain is booked in order."""
    if row.seq == 1:
        if row.prev == fmt.GENESIS:
            return None
        return FLAGGED, "chain fork: the first receipt of a PoP must have the genesis prev"
    before = batch.stored.get(fmt.receipt_id(row.pop_id, row.seq - 1))
    if before is None:
        before = session.scalar(select(Receipt).where(Receipt.pop_id == row.pop_id,
                                                      Receipt.seq == row.seq - 1))
    if before is None:
        return HELD, gap_reason(row.pop_id, row.seq - 1)
    if before.digest != row.prev:
        return FLAGGED, _fork_reason(before)
    if _in_gap(before):
        return HELD, str(before.reason)
    return None


def _fork_reason(before: Receipt) -> str:
    return (f"chain fork: prev is not the digest of receipt {before.receipt_id} as received "
            f"({before.digest})")


def _follow(session: Session, row: Receipt, batch: _Batch) -> None:
    """What `row` arriving lets go: the receipts after it that waited for the chain to be
    whole, in order (or, while a gap remains before `row`, they wait for that one now), and
    the refunds that waited for a sale that is now booked."""
    current = row
    while True:
        if current.kind == "sale" and current.status == BOOKED:
            _release_refunds(session, current, batch)
        if current.seq + 1 not in batch.gaps:  # nothing after it waits
            return
        after = session.scalar(select(Receipt).where(Receipt.pop_id == current.pop_id,
                                                     Receipt.seq == current.seq + 1))
        if after is None or not _in_gap(after):
            return
        if after.prev != current.digest:
            _mark(session, after, FLAGGED, _fork_reason(current), audit.RECEIPT_CHAIN_FORK)
        elif _in_gap(current):
            after.reason = current.reason
        else:
            _settle(session, after, fmt.decode(after.body), batch)
        current = after


def _release_refunds(session: Session, sale: Receipt, batch: _Batch) -> None:
    if _waiting_for_sale(sale.receipt_id) not in batch.waiting:
        return
    waiting = session.scalars(select(Receipt).where(
        Receipt.merchant_id == sale.merchant_id, Receipt.kind == "refund",
        Receipt.status == HELD, Receipt.reason == _waiting_for_sale(sale.receipt_id))
        .order_by(Receipt.pop_id, Receipt.seq)).all()
    for refund in waiting:
        _settle(session, refund, fmt.decode(refund.body), batch)


def _mark(session: Session, row: Receipt, status: str, reason: str, kind: str) -> None:
    row.status, row.reason = status, reason
    audit.record(session, kind, merchant_id=row.merchant_id, pop=row.pop_id,
                 receipt=row.receipt_id, seq=row.seq, status=status, reason=reason)


def _event(session: Session, kind: str, uploader: Uploader, fields: dict[str, Any],
           **details: Any) -> None:
    audit.record(session, kind, merchant_id=uploader.merchant_id, pop=uploader.pop_id,
                 receipt=fields["id"], seq=fields["seq"], **details)
