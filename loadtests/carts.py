"""Realistic carts for the load users, drawn from the catalog of the release under test.

A PoP's latency depends on the cart: its lines (each is encoded, priced and matched against
every rule), its coupon codes and its shopper (a customer token is checked per request). So the
carts are made from what the PoP actually runs — its skus and coupon codes, read from the
release's sources on the control plane (`Workload`) — and their sizes follow a shop's mix rather
than a benchmark's fixed 20 lines: most carts hold a few lines, a long tail holds dozens (a
lognormal with a median of 4 lines, cut to 1..60).

Every draw comes from a `random.Random` seeded with text, one per user, so a run's carts are a
function of the seed and the user's number: a slow cart found in a report can be made again.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane.versions import check

MIN_LINES, MAX_LINES = 1, 60
MEDIAN_LINES = 4.0
LINES_SIGMA = 0.9  # of the log of the size: about 14% single-line carts, 5% over 20 lines
QUANTITIES = (1, 1, 1, 1, 2, 2, 3, 6)
UNKNOWN_CODES = ("NOPE-1", "SUMMER-99")  # typos and expired flyers: `unknown` answers
KNOWN_CODE_SHARE = 0.8  # of the codes shoppers type, those the program knows
INSTANT_SHARE = 0.3  # shoppers asking for the `choice` lane's cashback now (prefer: instant)


@dataclass(frozen=True)
class Mix:
    """How one kind of shopper's carts are made: weights of channels and fulfillments, the
    share of carts with a coupon code and of shoppers with a customer token."""

    channels: dict[str, float]
    fulfillments: dict[str, float]
    coupon_share: float
    known_shopper_share: float


# Online shoppers: web and app, delivered or picked up; a quarter type a code; most logged in.
ONLINE = Mix(channels={"web": 0.6, "app": 0.4}, fulfillments={"delivery": 0.55, "pickup": 0.45},
             coupon_share=0.25, known_shopper_share=0.6)
# A market stall's till: bought on the spot, some pre-orders picked up; fewer codes, some
# loyalty cards.
STALL = Mix(channels={"pos": 1.0}, fulfillments={"in_store": 0.85, "pickup": 0.15},
            coupon_share=0.1, known_shopper_share=0.3)


@dataclass(frozen=True)
class Sources:
    """A program version's texts as uploaded: what a merchant publishes again."""

    program: str
    program_format: str
    catalog: str
    catalog_format: str


@dataclass(frozen=True)
class Workload:
    """What the users need to know about the release under test."""

    skus: tuple[str, ...]
    codes: tuple[str, ...]  # literal coupon codes of the program (normalised, spec 6)
    customer_tokens: tuple[str, ...] = ()
    merchant: int | None = None  # for the merchant's control-plane calls
    version: int | None = None
    sources: Sources | None = None

    @classmethod
    def from_sources(cls, sources: Sources, *, customer_tokens: Sequence[str] = (),
                     merchant: int | None = None, version: int | None = None) -> Workload:
        """Checked the way the control plane checks an upload, so the skus and codes are the
        ones the release was built from (a CSV catalog as well as a JSON one)."""
        program = check(sources.program, sources.program_format, sources.catalog,
                        sources.catalog_format)
        codes = sorted({code for coupon_set in program.coupons for code in coupon_set.codes})
        return cls(skus=tuple(item.sku for item in program.catalog.items), codes=tuple(codes),
                   customer_tokens=tuple(customer_tokens), merchant=merchant, version=version,
                   sources=sources)

    def dump(self, path: Path) -> None:
        data = {"skus": self.skus, "codes": self.codes, "customer_tokens": self.customer_tokens,
                "merchant": self.merchant, "version": self.version,
                "sources": None if self.sources is None else vars(self.sources)}
        path.write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Workload:
        data = json.loads(path.read_text(encoding="utf-8"))
        sources = data["sources"]
        return cls(skus=tuple(data["skus"]), codes=tuple(data["codes"]),
                   customer_tokens=tuple(data["customer_tokens"]), merchant=data["merchant"],
                   version=data["version"], sources=None if sources is None else Sources(**sources))


@dataclass(frozen=True)
class Cart:
    """A PoP request body (spec 8 without what a PoP decides itself) and the shopper's
    customer token, sent as `X-Poprules-Customer` (None: an anonymous shopper)."""

    body: dict[str, Any]
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"X-Poprules-Customer": self.token}

    def first(self, count: int) -> Cart:
        """The cart as it was after `count` lines were scanned or added."""
        return Cart({**self.body, "lines": self.body["lines"][:count]}, self.token)


@dataclass
class CartMaker:
    """One user's stream of carts: reproducible from `seed`."""

    workload: Workload
    seed: str
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if not self.workload.skus:
            raise ValueError("the release's catalog has no items to put in a cart")
        self.rng = random.Random(f"poprules-loadtest/{self.seed}")

    def size(self) -> int:
        drawn = self.rng.lognormvariate(math.log(MEDIAN_LINES), LINES_SIGMA)
        return max(MIN_LINES, min(MAX_LINES, len(self.workload.skus), round(drawn)))

    def cart(self, mix: Mix) -> Cart:
        rng = self.rng
        lines = [{"sku": sku, "qty": rng.choice(QUANTITIES)}
                 for sku in rng.sample(self.workload.skus, self.size())]
        body: dict[str, Any] = {
            "lines": lines,
            "channel": _weighted(rng, mix.channels),
            "fulfillment": _weighted(rng, mix.fulfillments),
            "prefer": "instant" if rng.random() < INSTANT_SHARE else "wallet",
        }
        if rng.random() < mix.coupon_share:
            body["coupons"] = [self.code()]
        tokens = self.workload.customer_tokens
        token = rng.choice(tokens) if tokens and rng.random() < mix.known_shopper_share else None
        return Cart(body, token)

    def code(self) -> str:
        """A code as a shopper types it: usually one the program knows, sometimes not."""
        known = self.workload.codes
        if known and self.rng.random() < KNOWN_CODE_SHARE:
            return self.rng.choice(known)
        return self.rng.choice(UNKNOWN_CODES)

    def add_line(self, cart: Cart) -> Cart:
        """The cart with one more sku (browsing), or with one more of a line when it is full."""
        lines = [dict(line) for line in cart.body["lines"]]
        present = {line["sku"] for line in lines}
        if len(lines) < MAX_LINES and len(present) < len(self.workload.skus):
            sku = self.rng.choice(self.workload.skus)
            while sku in present:
                sku = self.rng.choice(self.workload.skus)
            lines.append({"sku": sku, "qty": self.rng.choice(QUANTITIES)})
        else:
            self.rng.choice(lines)["qty"] += 1
        return Cart({**cart.body, "lines": lines}, cart.token)


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]
