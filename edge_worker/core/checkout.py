"""What a PoP commits: the request as it evaluated it, the quote, and the sale and refund
receipts (poprules/receipt.py) that the control plane re-runs and books.

Everything a receipt holds is derived here from the release and the PoP's own state, never
from amounts a client sent: `evaluate` rebuilds the request from the fields it checked, with
the PoP's clock and the verified customer token, and runs the release. Standard library only
(plus the core), so the Cloudflare worker builds the same receipts.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from poprules import receipt
from poprules.bundle import normal_code_hash
from poprules.codes import normalize_code
from poprules.errors import InputError
from poprules.literals import format_utc

if TYPE_CHECKING:
    from edge_worker.core.redemptions import Redemptions
    from edge_worker.core.release import Release

# The PoP's signature over a quote covers QUOTE_CONTEXT + the canonical answer, so it can never
# pass for a receipt's signature (receipt.CONTEXT), which the same key makes.
QUOTE_CONTEXT = b"poprules-quote/1\n"
QUOTE_ID_CONTEXT = b"poprules-quote-id/1\n"
# Request fields a client may send to a PoP (spec section 8 without `customer`, `at` and
# `spent_coupons`, which the PoP supplies); any other field is ignored, as the spec says.
CLIENT_FIELDS = ("lines", "channel", "fulfillment", "pop", "coupons", "prefer")
CLAIM_RANDOM_BYTES = 16  # 22 base64url characters: unguessable, short enough for a QR code
TOTALS = ("subtotal", "discount", "net", "cashback_instant", "payable", "cashback_wallet",
          "points")

Signer = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation at a PoP: exactly what a sale receipt records, so the control plane
    can re-run `request` on the release with `spent` and compare `quote`."""

    at: int  # the PoP's clock, Unix seconds
    request: dict[str, Any]  # the request as evaluated: spec §8 JSON, defaults written out
    customer: str | None  # the customer token's `sub`
    referrer: str | None  # the customer token's `ref`: who `to: referrer` cashback goes to
    spent: list[str]  # sorted keyed hashes of the request's codes the snapshot said were spent
    snapshot: int | None  # the redemption snapshot's version, or None without one
    quote: dict[str, Any]  # the spec §8 quote without `release`
    quote_id: str


def evaluate(release: Release, redemptions: Redemptions | None, fields: Mapping[str, Any], *,
             token: Mapping[str, Any] | None, at: int) -> Evaluation:
    """Quote the client's `fields` at `at` for the shopper of a verified customer token
    (`token`: its payload) or an anonymous one. Raises InputError naming a bad field."""
    raw = {key: fields[key] for key in CLIENT_FIELDS if key in fields}
    raw["at"] = format_utc(at)
    if token is not None:
        raw["customer"] = token["customer"]
    parsed = release.read_request(raw)
    request: dict[str, Any] = {
        "lines": [{"sku": line.sku, "qty": line.qty} for line in parsed.lines],
        "channel": parsed.channel, "fulfillment": parsed.fulfillment, "pop": parsed.pop,
        "coupons": list(parsed.coupons), "prefer": parsed.prefer, "at": raw["at"],
    }
    if token is not None:
        request["customer"] = dict(token["customer"])
    customer = None if token is None else str(token["sub"])
    referrer = None if token is None or token.get("ref") is None else str(token["ref"])
    spent: list[str] = []
    if redemptions is not None:
        key = release.bundle.coupons["key"]
        spent = sorted({normal_code_hash(key, normal)
                        for normal in map(normalize_code, parsed.coupons)
                        if redemptions.spent(normal, customer)})
    quote = release.quote(parsed, redemptions=redemptions, customer_hash=customer,
                          with_release=False)
    return Evaluation(at=at, request=request, customer=customer, referrer=referrer,
                      spent=spent,
                      snapshot=None if redemptions is None else redemptions.version,
                      quote=quote, quote_id=quote_id(release.hash, request, customer, spent))


def quote_id(release_hash: str, request: Mapping[str, Any], customer: str | None,
             spent: Sequence[str]) -> str:
    """Names everything the quote depends on (the module is deterministic): the same cart
    for the same shopper at the same second on the same release and state has the same id."""
    named = {"release": release_hash, "request": request, "customer": customer,
             "spent": list(spent)}
    return hashlib.sha256(QUOTE_ID_CONTEXT + receipt.encode(named)).hexdigest()


def _unsigned(evaluation: Evaluation, release: Release, number: int,
              pop_id: int) -> dict[str, Any]:
    """The quote, the release (with its number), the quote id, the PoP and the time it used:
    what the PoP's signature covers."""
    return {**evaluation.quote,
            "release": {"program": release.program, "hash": release.hash, "number": number},
            "quote_id": evaluation.quote_id, "pop": pop_id, "at": format_utc(evaluation.at)}


def signed_quote(evaluation: Evaluation, release: Release, number: int, pop_id: int,
                 signer: Signer) -> dict[str, Any]:
    """The answer to POST /v1/quote, as an object to put in a larger answer (checkout's)."""
    answer = _unsigned(evaluation, release, number, pop_id)
    answer["signature"] = signer(QUOTE_CONTEXT + receipt.encode(answer)).hex()
    return answer


def signed_quote_json(evaluation: Evaluation, release: Release, number: int, pop_id: int,
                      signer: Signer) -> bytes:
    """The answer to POST /v1/quote, encoded: the canonical bytes the signature covers, with
    `signature` added as the last key. Encoding the answer is a quote's largest cost after the
    rule module (issue 8's profile, docs/performance.md), so it is encoded once, not once to
    sign and again to answer; the answer need not be canonical, only JSON with these keys."""
    canonical = receipt.encode(_unsigned(evaluation, release, number, pop_id))
    signature = signer(QUOTE_CONTEXT + canonical).hex().encode("ascii")
    return canonical[:-1] + b',"signature":"' + signature + b'"}'


def new_claim_secret(random: Callable[[int], bytes]) -> str:
    return base64.urlsafe_b64encode(random(CLAIM_RANDOM_BYTES)).rstrip(b"=").decode("ascii")


def claim_token(receipt_id: str, secret: str) -> str:
    """`<receipt id>.<secret>`: the receipt it claims, and the proof of holding it."""
    return f"{receipt_id}.{secret}"


_CLAIM_TOKEN = re.compile(r"[1-9][0-9]{0,18}-[1-9][0-9]{0,18}\.[A-Za-z0-9_-]{22}")


def is_claim_token(text: str) -> bool:
    """Whether `text` has the form of a claim token (not whether one was issued)."""
    return _CLAIM_TOKEN.fullmatch(text) is not None


def claim_hash(token: str) -> str:
    """What the receipt carries instead of the token: the control plane credits whoever
    presents a token with this hash, once."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _head(kind: str, merchant_id: int, pop_id: int, seq: int, prev: str,
          at: int) -> dict[str, Any]:
    return {"format": receipt.FORMAT, "kind": kind, "id": receipt.receipt_id(pop_id, seq),
            "merchant": merchant_id, "pop": pop_id, "seq": seq, "prev": prev, "at": at}


def sale_body(evaluation: Evaluation, *, merchant_id: int, pop_id: int, seq: int, prev: str,
              release_number: int, release_hash: str, claim: str | None) -> bytes:
    """The canonical body of a sale receipt; `claim` is the claim token's hash or None."""
    return receipt.encode({
        **_head("sale", merchant_id, pop_id, seq, prev, evaluation.at),
        "release": {"number": release_number, "hash": release_hash},
        "request": evaluation.request, "customer": evaluation.customer,
        "referrer": evaluation.referrer, "quote": evaluation.quote, "quote_id": evaluation.quote_id, "claim": claim,
        "snapshot": evaluation.snapshot, "spent": evaluation.spent,
    })


def refund_lines(original: Mapping[str, Any], lines: Any, refunded: set[int]) -> list[int]:
    """The sorted line indices to refund, checked against the sale: each an index of its
    request, once, and not refunded before. Raises InputError naming `lines[i]`."""
    if not isinstance(lines, list) or not lines:
        raise InputError("lines", "expected a non-empty list of line indices of the sale")
    count = len(original["request"]["lines"])
    seen: set[int] = set()
    for i, index in enumerate(lines):
        field = f"lines[{i}]"
        if type(index) is not int or not 0 <= index < count:
            raise InputError(field, f"expected a line index from 0 to {count - 1}, "
                             f"found {index!r}")
        if index in seen:
            raise InputError(field, f"line {index} is listed twice")
        if index in refunded:
            raise InputError(field, f"line {index} of {original['id']} was refunded already")
        seen.add(index)
    return sorted(seen)


def refund_body(original: Mapping[str, Any], lines: Sequence[int], *, merchant_id: int,
                pop_id: int, seq: int, prev: str, at: int) -> bytes:
    """The canonical body of a refund receipt reversing `lines` (from `refund_lines`) of the
    sale `original` (its decoded body)."""
    return receipt.encode({
        **_head("refund", merchant_id, pop_id, seq, prev, at),
        "refund_of": original["id"], "lines": list(lines),
        "reversal": reversal(original["quote"], lines),
    })


def reversal(quote: Mapping[str, Any], lines: Sequence[int]) -> dict[str, Any]:
    """What refunding `lines` takes back: those lines' figures and their totals, their points,
    and per rule the wallet cashback they carried (`wallet_shares`)."""
    chosen = [quote["lines"][i] for i in lines]

    def total(key: str) -> int:
        return sum(int(line[key]) for line in chosen)

    totals = {"subtotal": total("base"), "discount": total("discount"), "net": total("net"),
              "cashback_instant": total("cashback_instant"),
              "payable": total("net") - total("cashback_instant"),
              "cashback_wallet": total("cashback_wallet"), "points": total("points")}
    shares = wallet_shares(quote)
    wallet = [{"rule": entry["rule"], "amount": amount} for entry in quote["wallet"]
              if (amount := sum(shares[i][entry["rule"]] for i in lines))]
    return {"lines": chosen, "totals": totals, "wallet": wallet, "points": totals["points"]}


def wallet_shares(quote: Mapping[str, Any]) -> list[dict[str, int]]:
    """Per line of a sale, the part of each wallet rule's cashback that line carries: a
    function of the quote alone, so every refund of a sale uses the same split, and refunding
    every line (in one refund or several) reverses each rule's amount exactly.

    - The shopper's cashback: a line's `cashback_wallet` is split among the rules paying the
      shopper in proportion to what each still has unattributed after the lines before it
      (largest remainder, ties to the earlier rule), so the line's parts sum to its figure and
      each rule's parts over all lines to its amount.
    - A referrer's cashback (not in the line figures, spec 3): each rule's amount is split over
      the lines in proportion to their `net` (largest remainder, ties to the earlier line).
    """
    lines = quote["lines"]
    shares: list[dict[str, int]] = [{} for _ in lines]
    mine = [(e["rule"], int(e["amount"])) for e in quote["wallet"] if e.get("to") != "referrer"]
    left = [amount for _, amount in mine]
    if sum(left) != sum(int(line["cashback_wallet"]) for line in lines):
        raise ValueError("the quote's wallet entries do not add up to its lines' cashback")
    for share, line in zip(shares, lines, strict=True):
        parts = apportion(int(line["cashback_wallet"]), left)
        for k, (rule, _) in enumerate(mine):
            share[rule] = parts[k]
            left[k] -= parts[k]
    nets = [int(line["net"]) for line in lines]
    weights = nets if sum(nets) > 0 else [1] * len(lines)
    for entry in quote["wallet"]:
        if entry.get("to") == "referrer":
            for share, part in zip(shares, apportion(int(entry["amount"]), weights),
                                   strict=True):
                share[entry["rule"]] = part
    return shares


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder; ties to the earlier
    weight): the parts sum to `total`, and none exceeds its weight when `total` does not
    exceed the weights' sum."""
    whole = sum(weights)
    if total == 0:
        return [0] * len(weights)
    if whole <= 0:
        raise ValueError("nothing to apportion over")
    floors = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:total - sum(floors)]:
        floors[i] += 1
    return floors
