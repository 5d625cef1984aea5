"""A release as a PoP runs it: a checked bundle, its tables, and its module in an engine.

`Release.load` refuses a bundle whose parts do not match its manifest; `Release.quote` turns
a request into the quote of spec section 8 by running the module, so every host that loads
the same bundle gives the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_worker.core.codec import Tables, decode, encode
from edge_worker.core.engine import Engine, Runner
from poprules import bundle as fmt
from poprules.codes import normalize_code
from poprules.errors import InputError
from poprules.jsonio import load_object
from poprules.request import Request, parse_request
from poprules.zone import TableZone
from wasm_build import abi

if TYPE_CHECKING:
    from edge_worker.core.redemptions import Redemptions

_TAIL = 64  # output words read with the call beyond the fixed part; usually all there is
# Codes typed by shoppers whose set a release remembers; past this the memory starts over, so
# a flood of made-up codes costs HMACs, never memory.
_REMEMBERED_CODES = 4096


class EvaluationError(RuntimeError):
    """The module could not answer: the request is beyond its areas, or the host broke the
    ABI. Never the shopper's fault, never a partial quote."""


class TooLarge(InputError):
    """A figure of this order does not fit in 64 bits: the module refuses rather than wrap."""


@dataclass(frozen=True)
class Release:
    bundle: fmt.Bundle
    tables: Tables
    zone: TableZone
    runner: Runner
    _coupon_sets: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, data: bytes, engine: Engine) -> Release:
        bundle = fmt.decode(data)
        if bundle.manifest.get("abi") != abi.ABI_VERSION:
            raise fmt.BundleError(f"the bundle's module speaks ABI {bundle.manifest.get('abi')}, "
                                  f"this host speaks {abi.ABI_VERSION}")
        tables = Tables.of(bundle.tables)
        zone = TableZone(bundle.tables["timezone"], [tuple(t) for t in bundle.tables["zone"]])
        module_sha256 = bundle.manifest["parts"]["module"].removeprefix("sha256:")
        return cls(bundle, tables, zone, engine.load(bundle.module, module_sha256))

    @property
    def hash(self) -> str:
        return self.bundle.release_hash

    @property
    def program(self) -> str:
        return str(self.bundle.manifest["program"])

    def coupon_set(self, normal: str) -> int:
        """The coupon set of a normalised code, or -1. Remembered per release: a campaign's
        few codes come back on every checkout, and each costs an HMAC to look up."""
        index = self._coupon_sets.get(normal)
        if index is None:
            digest = fmt.normal_code_hash(self.bundle.coupons["key"], normal)
            index = self.bundle.coupons["codes"].get(digest, -1)
            if len(self._coupon_sets) >= _REMEMBERED_CODES:
                self._coupon_sets.clear()
            self._coupon_sets[normal] = index
        return index

    def read_request(self, raw: bytes | dict[str, Any]) -> Request:
        data = load_object(raw, "request") if isinstance(raw, bytes) else raw
        return parse_request(data, skus=self.tables.sku_index, zone=self.zone)

    def quote(self, request: Request, *, spent: Callable[[str], bool] | None = None,
              redemptions: Redemptions | None = None, customer_hash: str | None = None,
              with_release: bool = True) -> dict[str, Any]:
        """The quote; the redemption state is `redemptions` at a PoP (the snapshot it pulled,
        read for this release; `customer_hash`, the customer token's subject hash, for
        per_customer), else `spent(normal code)` (a simulation: the request's
        `spent_coupons`)."""
        coupon_set = self.coupon_set
        if redemptions is not None:
            if spent is not None:
                raise TypeError("give the redemption state as spent or redemptions, not both")
            if redemptions.release_hash != self.hash:
                raise ValueError("the redemption snapshot was read for another release; read "
                                 "it again for this one (Redemptions.from_snapshot)")
            state = redemptions

            def coupon_set(normal: str) -> int:
                index = self.coupon_set(normal)
                return index if index >= 0 else state.coupon_set(normal)

            def spent(normal: str) -> bool:
                return state.spent(normal, customer_hash)
        elif spent is None:
            listed = {normalize_code(c) for c in request.spent_coupons}
            spent = listed.__contains__
        encoded = encode(request, self.tables, coupon_set, spent)
        if len(encoded.words) > abi.INPUT_WORDS:
            raise InputError("coupons", "the request is too large for the rule module "
                             "(too many coupons or customer tags)")
        fixed = (abi.OUT_HEADER_WORDS + abi.LINE_WORDS * len(request.lines) + abi.TOTAL_WORDS
                 + abi.RULE_OUT_WORDS * len(self.tables.rule_ids))
        status, out = self.runner.run(encoded.words, read=fixed + _TAIL)
        if status == abi.EVAL_OVERFLOW:
            raise TooLarge("lines", "the amounts of this order are too large to compute "
                           "(a figure exceeds 64 bits)")
        if status != abi.EVAL_OK:
            raise EvaluationError(f"the rule module refused the input (status {status})")
        answer = decode(self._complete(out, fixed, len(encoded.codes)), request, encoded,
                        self.tables)
        if with_release:
            answer["release"] = {"program": self.program, "hash": self.hash}
        return answer

    def _complete(self, out: Sequence[int], fixed: int, codes: int) -> Sequence[int]:
        """The whole answer: the variable tail (wallet, credits, nudges, coupons) is read in
        the same call when it is short, with a second read when it is not."""
        end = fixed
        for width in (abi.WALLET_WORDS, abi.CREDIT_WORDS, abi.NUDGE_WORDS):
            if end >= len(out):
                break
            end += 1 + width * out[end]
        else:
            end += abi.COUPON_OUT_WORDS * codes
            if end <= len(out):
                return out
        upper = fixed + 3 + (abi.WALLET_WORDS + abi.CREDIT_WORDS + abi.NUDGE_WORDS) * len(
            self.tables.rule_ids) + abi.COUPON_OUT_WORDS * codes
        return [*out, *self.runner.read(len(out), upper - len(out))]
