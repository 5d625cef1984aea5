"""The checked, immutable rule model: what every later stage (the reference evaluator, the
code generator, the bundle) consumes. Nothing here can be invalid: the loaders build it only
from input that passed every check of the spec, and all money is already in minor units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from wasm_build.lang.ast import Node, Type

# --- catalog ------------------------------------------------------------------------------

AttributeValue = bool | int | str

#: The value an item has for a declared attribute it does not set (spec 1.2).
ATTRIBUTE_DEFAULTS: Mapping[Type, AttributeValue] = MappingProxyType(
    {Type.BOOL: False, Type.INT: 0, Type.MONEY: 0, Type.STRING: ""}
)


@dataclass(frozen=True)
class Item:
    sku: str
    title: str
    price: int  # minor units
    category: str
    brand: str
    tags: frozenset[str]
    attributes: Mapping[str, AttributeValue]  # every declared attribute, defaults filled in


@dataclass(frozen=True)
class Catalog:
    currency: str
    attributes: Mapping[str, Type]  # declaration order
    items: tuple[Item, ...]
    by_sku: Mapping[str, Item] = field(compare=False, repr=False)

    @classmethod
    def of(cls, currency: str, attributes: Mapping[str, Type], items: tuple[Item, ...]) -> Catalog:
        by_sku = MappingProxyType({item.sku: item for item in items})
        return cls(currency, MappingProxyType(dict(attributes)), items, by_sku)


# --- rules --------------------------------------------------------------------------------


class Rounding(Enum):
    HALF_EVEN = "half_even"
    HALF_UP = "half_up"
    DOWN = "down"


@dataclass(frozen=True)
class Expression:
    """A checked expression with its trimmed source text (reported in `failed`, `toward`)."""

    text: str
    node: Node


@dataclass(frozen=True)
class Schedule:
    """`active`: every given part must hold. Instants in Unix seconds; `days` 0 = Monday;
    `hours` in seconds since local midnight, end exclusive, a window that ends before it
    starts wraps midnight and belongs to the day on which it starts."""

    start: int | None = None
    until: int | None = None
    days: frozenset[int] | None = None
    hours: tuple[int, int] | None = None


@dataclass(frozen=True)
class Percent:
    ppm: int


@dataclass(frozen=True)
class Amount:
    minor: int


@dataclass(frozen=True)
class PerUnit:
    minor: int


Value = Percent | Amount | PerUnit


@dataclass(frozen=True)
class Step:
    min: int
    value: Value


@dataclass(frozen=True)
class Tiers:
    basis: Expression  # order-level money
    steps: tuple[Step, ...]  # ascending min


@dataclass(frozen=True)
class Keyed:
    by: Expression  # order-level string
    values: Mapping[str, Value]


ValueSpec = Percent | Amount | PerUnit | Tiers | Keyed


class Lane(Enum):
    INSTANT = "instant"
    WALLET = "wallet"
    CHOICE = "choice"


@dataclass(frozen=True)
class Discount:
    value: ValueSpec
    key = "discount"
    phase = 1


@dataclass(frozen=True)
class FreeItems:
    buy: int
    get: int
    key = "free_items"
    phase = 1


@dataclass(frozen=True)
class Cashback:
    value: ValueSpec
    lane: Lane = Lane.WALLET
    vest: int = 0  # seconds
    expires: int | None = None  # seconds after vesting; None: never lapses
    to_referrer: bool = False
    key = "cashback"
    phase = 2


@dataclass(frozen=True)
class Points:
    every: int  # minor units, > 0
    award: int
    key = "points"
    phase = 2


@dataclass(frozen=True)
class Credit:
    amount: ValueSpec  # Amount, or Tiers / Keyed of Amounts
    toward: Expression  # item condition
    expires: int | None = None  # seconds after checkout
    key = "credit"
    phase = 2


Reward = Discount | FreeItems | Cashback | Points | Credit


@dataclass(frozen=True)
class Cap:
    line: int | None = None  # minor units, or points on a points rule
    order: int | None = None


class Stacking(Enum):
    STACK = "stack"
    EXCLUSIVE = "exclusive"
    BEST_OF = "best_of"


@dataclass(frozen=True)
class Rule:
    id: str
    index: int  # position in the file
    title: str
    priority: int
    active: Schedule | None
    when: Expression | None
    items: Expression | None
    coupon: str | None
    reward: Reward
    cap: Cap
    stacking: Stacking
    group: str | None  # best_of group

    @property
    def phase(self) -> int:
        return self.reward.phase


# --- coupons -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generate:
    count: int
    length: int
    prefix: str


@dataclass(frozen=True)
class CouponSet:
    id: str
    codes: frozenset[str]  # normalised (spec 6)
    generate: Generate | None
    expires: int | None  # Unix seconds, exclusive
    max_redemptions: int | None
    per_customer: int | None


# --- program -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    name: str
    currency: str
    places: int  # the currency's decimals
    timezone: str
    rounding: Rounding
    coupons: tuple[CouponSet, ...]
    rules: tuple[Rule, ...]  # file order
    catalog: Catalog

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def evaluation_order(self) -> tuple[Rule, ...]:
        """Phase 1 then phase 2; within a phase priority descending, then file order."""
        return tuple(sorted(self.rules, key=lambda r: (r.phase, -r.priority, r.index)))
