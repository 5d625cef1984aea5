"""Seeded generator of random *valid* programs, catalogs and requests (spec rules-v1).

The worked examples pin down a handful of answers; the WebAssembly module and the reference
evaluator must agree on every input. This module makes inputs that reach every corner of the
spec (all currencies' decimals, DST zones, rounding modes, every reward form, lane, cap,
stacking mode, schedule part, condition operator and coupon status) and leans on the edges
where implementations drift apart: half-way rounding, allocation ties, thresholds met to the
minor unit, lines discounted to 0, instants on schedule and DST boundaries.

Everything is a function of the seed (`random.Random` seeded with text, no global state), so a
failing seed is a reproducer. The YAML is written as text here, not by a YAML library, because
the spec's quoting rules are part of what is tested (conditions that start with `"`, quoted
amounts, `NO`/`ON` as codes, `404` as an id); catalogs and requests are `json.dumps` output.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "Case",
    "GeneratedProgram",
    "generate_case",
    "generate_program",
    "generate_request",
]

# Currencies by decimals (spec 9.2): each of 0, 2, 3 and 4 must be exercised.
CURRENCIES: dict[str, int] = {
    "JPY": 0, "KRW": 0, "CLP": 0,
    "EUR": 2, "USD": 2, "GBP": 2,
    "BHD": 3, "KWD": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
# Zones with DST in both hemispheres, a half-hour DST (Lord Howe), a half-hour standard
# offset without DST (Kolkata) and plain UTC.
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata",
         "Etc/UTC")
ROUNDINGS = ("half_even", "half_up", "down")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

CATEGORIES = ("apparel", "shoes", "socks", "home", "food", "drop", "café", 'say "hi"')
BRANDS = ("ana", "bo", "Ceres", "d\\e")
ITEM_TAGS = ("organic", "local", "vegan", "new", "sale")
TIERS = ("", "bronze", "silver", "gold", "NO")
CUSTOMER_TAGS = ("vip", "staff", "new", "local")
CHANNELS = ("web", "pos", "app")
FULFILLMENTS = ("pickup", "delivery", "in_store")
POPS = ("lisbon-1", "berlin-2", "")
ORIGINS = ("pt", "de", "", "x y")
# Attribute declarations to pick from, so that every type is usually present.
ATTRIBUTES = (
    ("on_sale", "bool"), ("local", "bool"), ("_fragile", "bool"),
    ("weight_g", "int"), ("n2", "int"),
    ("deposit", "money"), ("msrp", "money"),
    ("origin", "string"), ("colour", "string"),
)
# Literal coupon codes, some of which only survive YAML 1.2 (`NO`, `ON`), need quoting
# (`true`, `PROMO 5`) or case folding beyond ASCII (`Straße-1` is `STRASSE-1`).
CODES = ("SUMMER-24", "WELCOME-10", "vip", "NO", "ON", "Yes", "Straße-1", "PROMO 5",
         "ÉTÉ-26", "X", "true", "404", "spring-15", "Null-ish", "a\tb")
PERCENTS_PPM = (0, 1, 5_000, 10_000, 25_000, 50_000, 100_000, 125_000, 150_000, 333_333,
                500_000, 1_000_000)
VESTS = ("0d", "30d", "12h", "15m", "1d", "7d")
LIFETIMES = ("365d", "0d", "14d", "90m", "1h", "30d")

Json = Any


# --- public API -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One generated input: the three files a quote needs, and the seed that made them."""

    program_yaml: str
    catalog_json: str
    request_json: str
    seed: int

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """Write program.yaml, catalog.json and request.json (the loaders read files)."""
        paths = (directory / "program.yaml", directory / "catalog.json",
                 directory / "request.json")
        for path, text in zip(paths, (self.program_yaml, self.catalog_json, self.request_json)):
            path.write_text(text, encoding="utf-8")
        return paths


@dataclass(frozen=True)
class Vocabulary:
    """What a request needs to know about a generated program to land on its edges."""

    zone: str
    skus: tuple[str, ...]
    baskets: tuple[tuple[tuple[str, int], ...], ...]  # carts whose subtotal is a threshold
    codes: tuple[str, ...]  # literal coupon codes as the program writes them
    prefixes: tuple[str, ...]  # of generated codes: never known in a simulation
    instants: tuple[int, ...]  # schedule edges, coupon expiries, DST changes
    anchor: int  # the instant the program's schedules are built around


@dataclass(frozen=True)
class GeneratedProgram:
    program_yaml: str
    catalog_json: str
    seed: int
    vocabulary: Vocabulary


def generate_program(seed: int, *, rules: int | None = None,
                     items: int | None = None) -> GeneratedProgram:
    """A random valid program and catalog; `rules`/`items` fix their sizes (a load test
    wants e.g. 100 rules over 2,000 skus), otherwise they are small and random."""
    return _ProgramMaker(random.Random(f"program/{seed}"), seed, rules, items).make()


def generate_request(program: GeneratedProgram, seed: int) -> str:
    """A random valid request for `program`, as JSON text."""
    return _RequestMaker(random.Random(f"request/{program.seed}/{seed}"),
                         program.vocabulary).make()


def generate_case(seed: int, *, rules: int | None = None, items: int | None = None) -> Case:
    program = generate_program(seed, rules=rules, items=items)
    request = generate_request(program, seed)
    return Case(program.program_yaml, program.catalog_json, request, seed)


# --- YAML as text ---------------------------------------------------------------------------


class Scalar(str):
    """A YAML scalar already written out (plain or quoted)."""


@dataclass(frozen=True)
class Block:
    """A block scalar (`|-` or `>-`): a long condition over several lines."""

    style: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Flow:
    """A mapping or sequence written inline: `{per_unit: 1.00}`, `[sat, sun]`."""

    value: dict[Scalar, Any] | list[Any]


YamlValue = Scalar | Block | Flow | dict[Scalar, Any] | list[Any]

# Only these are special in YAML 1.2 as the spec reads it (9.1); `NO` and `ON` are text.
_YAML_WORDS = {"true", "false", "null", "~", ""}
_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")


def _plain_ok(text: str, *, flow: bool) -> bool:
    """Whether `text` reads back as itself when written as a plain YAML 1.2 scalar."""
    if not text or text != text.strip() or text.lower() in _YAML_WORDS:
        return False
    if text[0] in _INDICATORS or "\n" in text or "\t" in text:
        return False
    if ": " in text or " #" in text or text.endswith(":"):
        return False
    return not (flow and any(c in text for c in ",[]{}"))


def _double(text: str) -> Scalar:
    return Scalar(json.dumps(text))  # JSON strings are YAML double-quoted scalars


def _single(text: str) -> Scalar:
    return Scalar("'" + text.replace("'", "''") + "'")


def _key(text: str) -> Scalar:
    return Scalar(text) if _plain_ok(text, flow=True) and text[0].isalpha() else _double(text)


def _inline(value: YamlValue) -> str:
    if isinstance(value, Flow):
        value = value.value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    assert isinstance(value, Scalar), value
    return value


def _emit_map(mapping: dict[Scalar, YamlValue], indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for key, value in mapping.items():
        if isinstance(value, Block):
            out.append(f"{pad}{key}: {value.style}")
            out.extend(f"{pad}  {line}" for line in value.lines)
        elif isinstance(value, dict) and value:
            out.append(f"{pad}{key}:")
            out.extend(_emit_map(value, indent + 2))
        elif isinstance(value, list) and value:
            out.append(f"{pad}{key}:")
            out.extend(_emit_seq(value, indent + 2))
        else:
            out.append(f"{pad}{key}: {_inline(value)}")
    return out


def _emit_seq(items: list[YamlValue], indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            lines = _emit_map(item, indent + 2)
            lines[0] = f"{pad}- {lines[0][indent + 2:]}"
            out.extend(lines)
        else:
            out.append(f"{pad}- {_inline(item)}")
    return out


# --- time -----------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _offset(seconds: int, zone: ZoneInfo) -> int:
    delta = _utc(seconds).astimezone(zone).utcoffset()
    assert delta is not None
    return int(delta.total_seconds())


def _local_instant(wall: datetime, zone: ZoneInfo) -> int:
    """What a time without an offset means (spec 2): fold=0 in a gap or an overlap."""
    aware = wall.replace(tzinfo=zone, fold=0)
    delta = aware.utcoffset()
    assert delta is not None
    return int(((wall - delta) - datetime(1970, 1, 1)).total_seconds())


@cache
def _transitions(zone_name: str, year: int) -> tuple[tuple[int, int, int], ...]:
    """(instant, offset before, offset after) of every offset change of `zone` in `year`."""
    zone = ZoneInfo(zone_name)
    start = int((datetime(year, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
    end = int((datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
    out: list[tuple[int, int, int]] = []
    step = 6 * 3600
    for t in range(start, end, step):
        before, after = _offset(t, zone), _offset(t + step, zone)
        if before == after:
            continue
        lo, hi = t, t + step  # offset(lo) == before, offset(hi) == after
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _offset(mid, zone) == before else (lo, mid)
        out.append((hi, before, after))
    return tuple(out)


def _wall(seconds: int, offset: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(seconds=seconds + offset)


def _clock(wall: datetime, *, with_seconds: bool) -> str:
    text = wall.strftime("%Y-%m-%dT%H:%M")
    return text + wall.strftime(":%S") if with_seconds or wall.second else text


def _offset_text(offset: int) -> str:
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


_OFFSETS = (0, 3600, 7200, -5 * 3600, -4 * 3600, 19_800, 20_700, 37_800, 39_600, 50_400,
            -43_200, -(23 * 3600 + 59 * 60), 23 * 3600 + 59 * 60)


def _time_text(rng: random.Random, seconds: int, zone: ZoneInfo, *,
               fraction: bool) -> tuple[str, int]:
    """A time literal for an instant: `Z`, an offset or local wall-clock time. Returns the
    text and the instant it denotes (a local time in a DST overlap means its first
    occurrence, so it may differ from `seconds`)."""
    form = rng.random()
    with_seconds = rng.random() < 0.3
    denoted = seconds
    if form < 0.3:
        text, suffix = _clock(_wall(seconds, 0), with_seconds=with_seconds), "Z"
    elif form < 0.55:
        offset = rng.choice((*_OFFSETS, _offset(seconds, zone)))
        text = _clock(_wall(seconds, offset), with_seconds=with_seconds)
        suffix = "-00:00" if offset == 0 and rng.random() < 0.2 else _offset_text(offset)
    else:
        wall = _wall(seconds, _offset(seconds, zone))
        text, suffix = _clock(wall, with_seconds=with_seconds), ""
        denoted = _local_instant(wall, zone)
    if fraction and rng.random() < 0.25:
        if text.count(":") == 1:
            text += ":00"
        text += rng.choice((".5", ".999", ".000001", ".0"))
    return text + suffix, denoted


# --- values ---------------------------------------------------------------------------------


class _Values:
    """Amounts, percents and literals written the many ways the spec accepts."""

    def __init__(self, rng: random.Random, places: int) -> None:
        self.rng = rng
        self.places = places
        self.scale: int = 10**places

    def decimal(self, minor: int) -> str:
        whole, frac = divmod(minor, self.scale)
        text = f"{whole}.{frac:0{self.places}d}" if self.places else f"{whole}"
        if self.rng.random() < 0.15:  # trailing zeros: `1.000` EUR, `100.00` JPY
            zeros = "0" * self.rng.randint(1, 2)
            text += zeros if self.places else "." + zeros
        elif frac == 0 and self.places and self.rng.random() < 0.35:
            text = str(whole)
        return text

    def amount(self, minor: int, *, flow: bool = False) -> Scalar:
        """A program amount: unquoted or quoted, spaces allowed inside the quotes."""
        text = self.decimal(minor)
        roll = self.rng.random()
        if roll < 0.15:
            return _double(text)
        if roll < 0.2:
            return _double(f" {text} ")
        if roll < 0.25 and not flow:
            return _single(text)
        return Scalar(text)

    def percent_text(self, ppm: int) -> str:
        whole, frac = divmod(ppm, 10_000)
        text = f"{whole}.{frac:04d}".rstrip("0").rstrip(".") if frac else str(whole)
        if self.rng.random() < 0.1:
            text += ("." if "." not in text else "") + "0" * self.rng.randint(1, 3)
        return text + "%"

    def percent(self, ppm: int) -> Scalar:
        text = self.percent_text(ppm)
        roll = self.rng.random()
        if roll < 0.1:
            return _double(text)
        if roll < 0.13:
            return _double(f" {text}")
        return Scalar(text)

    def money_literal(self, minor: int) -> str:
        """A money literal in a condition: `19.90`, or integer literals next to money
        (`50`, `5 * 10`), which mean major units."""
        if minor % self.scale == 0 and self.rng.random() < 0.45:
            major = minor // self.scale
            roll = self.rng.random()
            if roll < 0.2 and major % 5 == 0 and major:
                return f"5 * {major // 5}"
            if roll < 0.3 and major > 2:
                return f"({major - 2} + 2)"
            if roll < 0.35:
                return f"{major + 3} - 3"
            return str(major)
        whole, frac = divmod(minor, self.scale)
        if self.places == 0:
            return f"{whole}." + "0" * self.rng.randint(1, 2)
        text = f"{whole}.{frac:0{self.places}d}"
        return text + "0" if self.rng.random() < 0.1 else text


def _string_literal(text: str) -> str:
    """A condition string: `\\"` and `\\\\` are its only escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _normal_code(code: str) -> str:
    return "".join(ch for ch in code if not ch.isspace()).casefold()


# --- conditions -----------------------------------------------------------------------------


class _Conditions:
    """Typed random conditions (spec 5): every name, operator and aggregate."""

    def __init__(self, rng: random.Random, values: _Values, zone: ZoneInfo,
                 catalog: _CatalogFacts, thresholds: list[int], anchor: int) -> None:
        self.rng = rng
        self.values = values
        self.zone = zone
        self.catalog = catalog
        self.thresholds = thresholds
        self.anchor = anchor

    def threshold(self) -> int:
        return self.rng.choice(self.thresholds)

    def cents(self, *choices: int) -> int:
        """One of `choices` hundredths of a major unit, in minor units."""
        return self.rng.choice(choices) * self.values.scale // 100

    def attribute(self, type_: str) -> str | None:
        names = [n for n, t in self.catalog.attributes if t == type_]
        return f"item.{self.rng.choice(names)}" if names else None

    # values by type; `item` says whether item names may appear (items, toward, inside an
    # aggregate)

    def money(self, item: bool, aggregates: bool) -> str:
        choices: list[Callable[[], str]] = [
            lambda: "order.subtotal", lambda: "order.net",
            lambda: f"order.net - {self.values.money_literal(self.cents(0, 1, 100))}",
            lambda: f"order.subtotal * {self.rng.randint(1, 3)}",
            lambda: f"{self.rng.randint(2, 3)} * order.net",
            lambda: "(order.subtotal)",
        ]
        if item:
            choices += [lambda: "item.price", lambda: "item.base", lambda: "item.net",
                        lambda: "item.price * item.qty", lambda: "item.net + 1",
                        lambda: "item.base - item.net"] * 2
            money_attribute = self.attribute("money")
            if money_attribute is not None:
                choices += [lambda: money_attribute] * 2
        if aggregates:
            choices += [lambda: f"sum({self.money(True, False)})",
                        lambda: f"sum({self.money(True, False)}, {self.boolean(True, False, 1)})"]
        return self.rng.choice(choices)()

    def integer(self, item: bool, aggregates: bool) -> str:
        choices: list[Callable[[], str]] = [
            lambda: "order.units", lambda: "order.lines", lambda: "customer.orders",
            lambda: "order.units + 1", lambda: "order.lines * 2",
        ]
        if item:
            choices += [lambda: "item.qty", lambda: "item.qty * 2"] * 2
            int_attribute = self.attribute("int")
            if int_attribute is not None:
                choices += [lambda: int_attribute] * 2
        if aggregates:
            choices += [lambda: f"count({self.boolean(True, False, 1)})",
                        lambda: f"sum(item.qty, {self.boolean(True, False, 1)})",
                        lambda: "sum(item.qty)"]
            attr = self.attribute("int")
            if attr:
                choices.append(lambda: f"sum({attr})")
        return self.rng.choice(choices)()

    def string(self, item: bool) -> tuple[str, Sequence[str]]:
        """A string value and the values it is likely to have (to compare with)."""
        choices: list[tuple[str, Sequence[str]]] = [
            ("order.channel", (*CHANNELS, "")), ("order.fulfillment", (*FULFILLMENTS, "")),
            ("order.pop", POPS), ("customer.tier", TIERS),
        ]
        if item:
            choices += [("item.category", self.catalog.categories),
                        ("item.brand", (*BRANDS, "")), ("item.sku", self.catalog.skus)] * 2
            attr = self.attribute("string")
            if attr:
                choices.append((attr, ORIGINS))
        return self.rng.choice(choices)

    def time_literal(self) -> str:
        at = self.anchor + self.rng.choice((0, 0, -1, 1, -3600, 3600, -86_400, 600))
        return _time_text(self.rng, at, self.zone, fraction=False)[0]

    def comparison(self, item: bool, aggregates: bool) -> str:
        rng = self.rng
        op = rng.choice(("==", "!=", "<", "<=", ">", ">=", ">=", ">="))
        kind = rng.random()
        if kind < 0.4:
            left, right = self.money(item, aggregates), self.values.money_literal(self.threshold())
            if rng.random() < 0.15:  # threshold on the left: `50 <= order.subtotal`
                left, right = right, left
            elif rng.random() < 0.1:
                right = self.money(item, aggregates)
        elif kind < 0.65:
            left = self.integer(item, aggregates)
            right = str(rng.choice((0, 1, 2, 3, 5, 10)))
            if rng.random() < 0.1:
                right = f"{rng.randint(1, 3)} * {rng.randint(1, 3)}"
        elif kind < 0.85:
            op = rng.choice(("==", "!=", "=="))
            left, pool = self.string(item)
            right = _string_literal(rng.choice(pool))
            if rng.random() < 0.1:
                right = self.string(item)[0]
        elif kind < 0.95:
            left, right = "order.now", self.time_literal()
        elif kind < 0.98:
            op = rng.choice(("==", "!="))
            left, right = "customer.known", rng.choice(("true", "false", "customer.referred"))
        else:
            left = self.values.percent_text(rng.choice(PERCENTS_PPM))
            right = self.values.percent_text(rng.choice(PERCENTS_PPM))
        space = "" if rng.random() < 0.05 else " "
        return f"{left}{space}{op}{space}{right}"

    def membership(self, item: bool, aggregates: bool) -> str:
        rng = self.rng
        neg = " not in " if rng.random() < 0.3 else " in "
        kind = rng.random()
        if kind < 0.3:
            value, pool = self.string(item)
            size = rng.choice((0, 1, 2, 3))
            items = [_string_literal(rng.choice(pool)) for _ in range(size)]
        elif kind < 0.45:
            value = self.integer(item, aggregates)
            items = [str(rng.randint(0, 5)) for _ in range(rng.choice((0, 1, 2, 3)))]
        elif kind < 0.55:
            value = self.money(item, aggregates)
            items = [self.values.money_literal(self.threshold()).replace("5 * ", "")
                     for _ in range(rng.choice((0, 1, 2)))]
            items = [i for i in items if not any(c in i for c in "()+-")]
        elif kind < 0.6:
            value, items = "order.now", [self.time_literal() for _ in range(rng.randint(0, 2))]
        elif kind < 0.63:
            value, items = "customer.known", [rng.choice(("true", "false"))]
        else:
            sets = ["customer.tags"] + (["item.tags"] * 2 if item else [])
            collection = rng.choice(sets)
            pool = CUSTOMER_TAGS if collection == "customer.tags" else ITEM_TAGS
            left = _string_literal(rng.choice(pool))
            if rng.random() < 0.1:
                left = self.string(item)[0]
            return f"{left}{neg}{collection}"
        return f"{value}{neg}[{', '.join(items)}]"

    def atom(self, item: bool, aggregates: bool) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            return self.comparison(item, aggregates)
        if roll < 0.6:
            return self.membership(item, aggregates)
        if roll < 0.8 and aggregates:
            inner = self.boolean(True, False, 1)
            return rng.choice((
                f"any({inner})", f"all({inner})",
                f"count({inner}) >= {rng.randint(1, 3)}",
                f"sum(item.qty, {inner}) > {rng.randint(1, 4)}",
                f"sum(item.net, {inner}) >= {self.values.money_literal(self.threshold())}",
            ))
        names = ["customer.known", "customer.referred"]
        attr = self.attribute("bool") if item else None
        if attr:
            names += [attr] * 3
        if rng.random() < 0.04:
            return rng.choice(("true", "false"))
        return rng.choice(names)

    def boolean(self, item: bool, aggregates: bool, depth: int) -> str:
        rng = self.rng
        roll = rng.random()
        if depth <= 0 or roll < 0.45:
            return self.atom(item, aggregates)
        if roll < 0.8:
            op = " and " if rng.random() < 0.65 else " or "
            parts = [self.boolean(item, aggregates, depth - 1) for _ in range(rng.randint(2, 3))]
            return op.join(parts)
        if roll < 0.92:
            inner = self.boolean(item, aggregates, depth - 1)
            return f"not ({inner})" if rng.random() < 0.7 else f"not {self.atom(item, aggregates)}"
        return f"({self.boolean(item, aggregates, depth - 1)})"

    # the conditions of a rule

    def when(self) -> str:
        """Order conditions, often an and-chain with a spend threshold (nudges)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            spend = rng.choice(("order.subtotal", "order.net", "sum(item.net)",
                                f"sum(item.base, {self.boolean(True, False, 0)})"))
            op = rng.choice((">=", ">=", ">"))
            test = f"{spend} {op} {self.values.money_literal(self.threshold())}"
            if rng.random() < 0.2:
                flipped = {">=": "<=", ">": "<"}[op]
                test = f"{self.values.money_literal(self.threshold())} {flipped} {spend}"
            if rng.random() < 0.5:
                other = self.boolean(False, True, 1)
                parts = [test, other] if rng.random() < 0.5 else [other, test]
                if rng.random() < 0.3:
                    parts = [f"({parts[0]})", parts[1]]
                return " and ".join(parts)
            return test
        return self.boolean(False, True, 2)

    def items(self) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            category = _string_literal(rng.choice(self.catalog.categories))
            other = _string_literal(rng.choice(self.catalog.categories))
            simple = rng.choice((
                f"item.category == {category}", f"item.category != {category}",
                f'"{rng.choice(ITEM_TAGS)}" in item.tags',
                f"item.category in [{category}, {other}]",
                f"item.sku in [{_string_literal(rng.choice(self.catalog.skus))}]",
            ))
            attr = self.attribute("bool")
            if attr and rng.random() < 0.3:
                simple = f"not {attr}" if rng.random() < 0.5 else attr
            return simple
        return self.boolean(True, False, 2)

    def basis(self) -> str:
        return self.rng.choice((
            "order.subtotal", "order.net", "sum(item.net)",
            f"sum(item.net, {self.boolean(True, False, 0)})",
            "order.subtotal * 2", f"order.net + {self.values.money_literal(self.values.scale)}",
            "2 * order.net", "(order.subtotal)",
            f"order.net - {self.values.money_literal(self.threshold())}",
        ))

    def yaml(self, text: str) -> Scalar | Block:
        """Write a condition in YAML: plain when it reads back as itself, else quoted, now
        and then as a block scalar."""
        roll = self.rng.random()
        if " and " in text and roll < 0.1:
            parts = text.split(" and ")
            lines = [parts[0]] + [f"and {p}" for p in parts[1:]]
            style = self.rng.choice((">-", "|-", "|"))
            if any(line != line.strip() or not line for line in lines):
                return _single(text)
            return Block(style, tuple(lines))
        if _plain_ok(text, flow=False) and roll < 0.7:
            return Scalar(text)
        return _single(text) if self.rng.random() < 0.5 else _double(text)


# --- catalog --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CatalogFacts:
    skus: tuple[str, ...]
    prices: tuple[int, ...]
    categories: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]


def _catalog(rng: random.Random, values: _Values, currency: str,
             count: int) -> tuple[str, _CatalogFacts]:
    scale = values.scale
    attributes = [a for a in ATTRIBUTES if rng.random() < 0.45]
    categories = tuple(rng.sample(CATEGORIES, rng.randint(2, 5)))
    skus = [f"SKU-{i:04d}" if count > 50 else rng.choice(("SKU", "tee", "ITEM", "p")) + f"-{i}"
            for i in range(count)]
    if count >= 3 and rng.random() < 0.25:
        skus[1], skus[2] = "café-1", "cafe\u0301-1"  # precomposed and decomposed: two skus
    if count >= 5 and rng.random() < 0.2:
        skus[3], skus[4] = "Tee", "TEE"
    items: list[dict[str, Json]] = []
    prices: list[int] = []
    for sku in skus:
        price = rng.choice((
            0, 1, 5, 15, 25, 50, 99, 333, scale, 5 * scale, 10 * scale,
            19 * scale + 90 * scale // 100,
            rng.randint(1, 50 * scale), rng.randint(1, 5000) * max(1, scale // 100),
            rng.randint(1, 999),
        ))
        if rng.random() < 0.05:
            price = 0
        prices.append(price)
        item: dict[str, Json] = {"sku": sku, "price": _price_json(rng, values, price),
                                 "category": rng.choice(categories)}
        if rng.random() < 0.4:
            item["title"] = rng.choice(("Organic tee", "Clay mug", "Merino socks", "",
                                        'The "best" mug', "Ü-Boot"))
        if rng.random() < 0.5:
            item["brand"] = rng.choice(BRANDS)
        if rng.random() < 0.6:
            item["tags"] = rng.sample(ITEM_TAGS, rng.randint(0, 3))
        for name, type_ in attributes:
            if rng.random() < 0.75:
                item[name] = _attribute_value(rng, values, type_)
        keys = list(item)
        if rng.random() < 0.2:
            rng.shuffle(keys)
        items.append({k: item[k] for k in keys})
    document: dict[str, Json] = {}
    if rng.random() < 0.6:
        document["currency"] = currency
    if attributes or rng.random() < 0.2:
        document["attributes"] = dict(attributes)
    document["items"] = items
    indent = rng.choice((None, 1, 2))
    text = json.dumps(document, indent=indent, ensure_ascii=rng.random() < 0.5)
    return text, _CatalogFacts(tuple(skus), tuple(prices), categories, tuple(attributes))


def _price_json(rng: random.Random, values: _Values, minor: int) -> Json:
    """A catalog amount: a decimal string (spaces around it allowed) or a JSON number."""
    text = values.decimal(minor)
    roll = rng.random()
    if roll < 0.2 and minor % values.scale == 0:
        return minor // values.scale
    if roll < 0.35:
        number = float(text)
        if "e" not in repr(number) and _same_amount(repr(number), text):
            return number
    if roll > 0.95:
        return f" {text} "
    return text


def _same_amount(a: str, b: str) -> bool:
    return Decimal(a) == Decimal(b)


def _attribute_value(rng: random.Random, values: _Values, type_: str) -> Json:
    if type_ == "bool":
        return rng.random() < 0.5
    if type_ == "int":
        return rng.choice((0, 1, -3, 180, 1000, rng.randint(-50, 500)))
    if type_ == "money":
        return _price_json(rng, values, rng.choice((0, 1, 50, values.scale, rng.randint(0, 999))))
    return rng.choice(ORIGINS)


# --- program --------------------------------------------------------------------------------


@dataclass
class _RuleDraft:
    """A rule being assembled; `kind` decides which best_of groups it may join."""

    body: dict[Scalar, YamlValue]
    kind: str  # "phase1", "money2" or "points"


class _ProgramMaker:
    def __init__(self, rng: random.Random, seed: int, rules: int | None,
                 items: int | None) -> None:
        self.rng = rng
        self.seed = seed
        self.rule_count = rules
        self.item_count = items
        self.instants: list[int] = []

    def make(self) -> GeneratedProgram:
        rng = self.rng
        currency = rng.choice(tuple(CURRENCIES))
        places = CURRENCIES[currency]
        self.values = _Values(rng, places)
        zone_name = rng.choice(ZONES)
        self.zone = ZoneInfo(zone_name)
        self.anchor = self.pick_anchor(zone_name)
        count = self.item_count if self.item_count is not None else rng.choice(
            (1, 2, 2, 3, 3, 4, 5, 6, 8, 10))
        catalog_json, catalog = _catalog(rng, self.values, currency, count)
        self.catalog = catalog
        baskets = self.baskets(catalog)
        thresholds = self.thresholds(catalog, baskets)
        self.conditions = _Conditions(rng, self.values, self.zone, catalog, thresholds,
                                      self.anchor)
        self.threshold_pool = thresholds

        top: dict[Scalar, YamlValue] = {
            Scalar("program"): Scalar(f"random-{self.seed % 10**9}"),
            Scalar("currency"): Scalar(currency) if rng.random() < 0.8 else _double(currency),
            Scalar("timezone"): Scalar(zone_name),
        }
        if rng.random() < 0.8:
            top[Scalar("rounding")] = Scalar(rng.choice(ROUNDINGS))
        sets, codes, prefixes = self.coupon_sets()
        if sets or rng.random() < 0.1:
            top[Scalar("coupons")] = sets
        n_rules = self.rule_count if self.rule_count is not None else rng.choice(
            (0, 1, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 10))
        set_ids = [str(s[Scalar("id")]).strip("\"'") for s in sets if isinstance(s, dict)]
        drafts = [self.rule(i, set_ids) for i in range(n_rules)]
        self.stacking(drafts)
        if drafts or rng.random() < 0.3:
            top[Scalar("rules")] = [d.body for d in drafts]
        keys = list(top)
        if rng.random() < 0.1:
            rng.shuffle(keys)
        header = f"# generated by wasm_build.random_program, seed {self.seed}\n"
        yaml_text = header + "\n".join(_emit_map({k: top[k] for k in keys}, 0)) + "\n"
        for at, _, _ in _transitions(zone_name, 2026):
            self.instants += [at - 1, at, at + 1800, at - 3600]
        vocabulary = Vocabulary(zone_name, catalog.skus, baskets, tuple(codes), tuple(prefixes),
                                tuple(self.instants), self.anchor)
        return GeneratedProgram(yaml_text, catalog_json, self.seed, vocabulary)

    def pick_anchor(self, zone_name: str) -> int:
        rng = self.rng
        changes = _transitions(zone_name, 2026)
        if changes and rng.random() < 0.35:
            at = rng.choice(changes)[0]
            return at + rng.choice((0, 0, -1, 1, -1800, 1800, -3600, 3600, -5400, 7200))
        day = datetime(2026, 1, 1) + timedelta(days=rng.randint(0, 364))
        wall = day.replace(hour=rng.choice((0, 1, 9, 10, 12, 17, 18, 22, 23)),
                           minute=rng.choice((0, 0, 30, 59)), second=rng.choice((0, 0, 59)))
        return _local_instant(wall, self.zone)

    def baskets(self, catalog: _CatalogFacts) -> tuple[tuple[tuple[str, int], ...], ...]:
        rng = self.rng
        out = []
        for _ in range(3):
            size = rng.randint(1, min(3, len(catalog.skus)))
            out.append(tuple((rng.choice(catalog.skus), rng.choice((1, 1, 2, 3)))
                             for _ in range(size)))
        return tuple(out)

    def thresholds(self, catalog: _CatalogFacts,
                   baskets: Sequence[tuple[tuple[str, int], ...]]) -> list[int]:
        price = dict(zip(catalog.skus, catalog.prices))
        scale = self.values.scale
        out = [0, scale, 5 * scale, 20 * scale, 50 * scale, 100 * scale]
        for basket in baskets:
            subtotal = sum(price[sku] * qty for sku, qty in basket)
            out += [subtotal, subtotal, subtotal + 1, max(subtotal - 1, 0)]
        out += list(catalog.prices[:5])
        return out

    def instant_text(self, seconds: int) -> tuple[Scalar, int]:
        text, denoted = _time_text(self.rng, seconds, self.zone, fraction=True)
        return (_double(text) if self.rng.random() < 0.2 else Scalar(text)), denoted

    # coupons

    def coupon_sets(self) -> tuple[list[YamlValue], list[str], list[str]]:
        rng = self.rng
        sets: list[YamlValue] = []
        known: list[str] = []
        prefixes: list[str] = []
        taken: set[str] = set()
        pool = list(CODES)
        rng.shuffle(pool)
        ids = rng.sample(("summer", "welcome", "c-1", "vip_club", "2024", "spring"),
                         rng.choice((0, 0, 1, 1, 2, 2, 3)))
        for cid in ids:
            body: dict[Scalar, YamlValue] = {Scalar("id"): Scalar(cid)}
            codes: list[str] = []
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                if not pool:
                    break
                code = pool.pop()
                if _normal_code(code) not in taken:
                    taken.add(_normal_code(code))
                    codes.append(code)
            generate = not codes or rng.random() < 0.3
            if codes or rng.random() < 0.3:
                body[Scalar("codes")] = [self.code_scalar(c) for c in codes]
            if generate:
                prefix = rng.choice(("POP-", "", "gen_"))
                spec: dict[Scalar, YamlValue] = {Scalar("count"): Scalar(str(rng.randint(1, 500)))}
                if prefix or rng.random() < 0.3:
                    spec[Scalar("prefix")] = _double(prefix)
                spec[Scalar("length")] = Scalar(str(rng.randint(1, 12)))
                body[Scalar("generate")] = Flow(spec) if rng.random() < 0.5 else spec
                prefixes.append(prefix)
            if rng.random() < 0.6:
                target = self.anchor + rng.choice((-86_400 * 30, -1, 0, 1, 3600, 86_400 * 90))
                text, expires = self.instant_text(target)
                body[Scalar("expires")] = text
                self.instants.append(expires)
            if rng.random() < 0.3:
                body[Scalar("max_redemptions")] = Scalar(str(rng.choice((1, 500, 10**6))))
            if rng.random() < 0.3:
                body[Scalar("per_customer")] = Scalar(str(rng.choice((1, 2))))
            if "codes" not in body and "generate" not in body:
                raise AssertionError("a coupon set needs codes or generate")
            sets.append(body)
            known += codes
        return sets, known, prefixes

    def code_scalar(self, code: str) -> Scalar:
        if _plain_ok(code, flow=True) and code.lower() not in ("true", "false") and (
            self.rng.random() < 0.6
        ):
            return Scalar(code)
        return _double(code)

    # rules

    def rule(self, index: int, set_ids: Sequence[str]) -> _RuleDraft:
        rng = self.rng
        words = ("boost", "promo", "loyalty", "drop", "bundle", "tier", "friend", "x")
        rid = f"r{index}-{rng.choice(words)}" if rng.random() < 0.9 else str(404 + index)
        body: dict[Scalar, YamlValue] = {Scalar("id"): Scalar(rid)}
        if rng.random() < 0.3:
            body[Scalar("title")] = _double(rng.choice(("10% off", "Cashback: 5%", 'The "deal"',
                                                         "", "# not a comment")))
        if rng.random() < 0.6:
            body[Scalar("priority")] = Scalar(str(rng.choice((-2, -1, 0, 0, 1, 1, 5, 100)))
                                              if rng.random() < 0.95 else "+1")
        if rng.random() < 0.25:
            body[Scalar("active")] = self.schedule()
        if rng.random() < 0.55:
            body[Scalar("when")] = self.when_value()
        if rng.random() < 0.45:
            body[Scalar("items")] = self.conditions.yaml(self.conditions.items())
        if set_ids and rng.random() < 0.3:
            cid = rng.choice(set_ids)
            body[Scalar("coupon")] = Scalar(cid) if rng.random() < 0.8 else _double(cid)
        kind = self.reward(body)
        if rng.random() < 0.25:
            self.cap(body, kind)
        return _RuleDraft(body, kind)

    def when_value(self) -> YamlValue:
        roll = self.rng.random()
        if roll < 0.04:
            return Scalar(self.rng.choice(("true", "false", "True", "FALSE")))
        text = self.conditions.when()
        if text.startswith('"'):
            return _single(text)
        return self.conditions.yaml(text)

    def schedule(self) -> dict[Scalar, YamlValue]:
        rng = self.rng
        body: dict[Scalar, YamlValue] = {}
        parts = [p for p in ("from", "until", "days", "hours") if rng.random() < 0.45]
        if not parts:
            parts = [rng.choice(("from", "until", "days", "hours"))]
        anchor = self.anchor
        if "from" in parts or "until" in parts:
            start, until = self.window(anchor)
            texts = [(key, *self.instant_text(seconds))
                     for key, seconds in (("from", start), ("until", until)) if key in parts]
            if len(texts) == 2 and texts[0][2] >= texts[1][2]:
                # A local time in a DST overlap can move `from` past `until`: use UTC.
                texts = [(key, Scalar(_clock(_utc(s).replace(tzinfo=None), with_seconds=True)
                                      + "Z"), s)
                         for key, s in (("from", start), ("until", until))]
            for key, text, denoted in texts:
                body[Scalar(key)] = text
                self.instants += [denoted, denoted - 1]
        local = _wall(anchor, _offset(anchor, self.zone))
        if "days" in parts:
            today = local.weekday()
            chosen = {d for d in range(7) if rng.random() < 0.3}
            if rng.random() < 0.6:
                chosen.add(today)
            if rng.random() < 0.3:
                chosen.add((today - 1) % 7)
            if not chosen:
                chosen = {rng.randrange(7)}
            names = [self.day_name(d) for d in sorted(chosen)]
            rng.shuffle(names)
            body[Scalar("days")] = Flow(names) if rng.random() < 0.6 else names
        if "hours" in parts:
            body[Scalar("hours")] = self.hours(local)
        return body

    def window(self, anchor: int) -> tuple[int, int]:
        """`from` and `until` around the anchor: containing it, ending or starting on it,
        wholly past or wholly future."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            return (anchor - rng.choice((0, 1, 3600, 86_400)),
                    anchor + rng.choice((1, 60, 3600, 86_400 * 2)))
        if roll < 0.55:
            until = anchor + rng.choice((0, 1, -1))
            return until - rng.choice((1, 3600)), until
        if roll < 0.7:
            start = anchor + rng.choice((0, 1, -1))
            return start, start + rng.choice((60, 3600))
        if roll < 0.85:
            until = anchor - rng.choice((1, 3600, 86_400 * 3))
            return until - 86_400, until
        start = anchor + rng.choice((60, 86_400))
        return start, start + 3600

    def day_name(self, day: int) -> Scalar:
        name = DAYS[day]
        return Scalar(self.rng.choice((name, name.upper(), name.capitalize(), name)))

    def hours(self, local: datetime) -> Scalar:
        rng = self.rng
        now = local.hour * 60 + local.minute
        start = (now + rng.choice((0, 0, -1, 1, -60, -600, 60, 120))) % 1440
        end = (now + rng.choice((0, 1, 60, 180, 600, -120, -1))) % 1440
        if rng.random() < 0.1:
            start, end = now, 1440  # `24:00` only as an end
        elif rng.random() < 0.05:
            start, end = 0, 1440
        if start == end:
            end = (end + 30) % 1440 or 1440
        self.note_window(local, start, end)

        def clock(minutes: int) -> str:
            h, m = divmod(minutes, 60)
            return f"{h}:{m:02d}" if h < 10 and rng.random() < 0.3 else f"{h:02d}:{m:02d}"

        text = f"{clock(start)}{rng.choice(('-', ' - ', '-', ' -'))}{clock(end)}"
        if rng.random() < 0.3 and " " not in text:
            return Scalar(text)
        return _double(text) if rng.random() < 0.7 else _single(text)

    def note_window(self, local: datetime, start: int, end: int) -> None:
        """Remember the window's edges around the anchor: requests stand on them."""
        midnight = local.replace(hour=0, minute=0, second=0)
        for day in (-1, 0, 1):
            for minute in (start, end):
                wall = midnight + timedelta(days=day, minutes=minute)
                at = _local_instant(wall, self.zone)
                self.instants += [at, at - 1]

    def reward(self, body: dict[Scalar, YamlValue]) -> str:
        rng = self.rng
        key = rng.choices(("discount", "cashback", "points", "free_items", "credit"),
                          weights=(30, 32, 12, 12, 14))[0]
        spec: dict[Scalar, YamlValue]
        if key == "discount":
            body[Scalar("discount")] = self.value_spec(credit=False)
            return "phase1"
        if key == "free_items":
            spec = {Scalar("buy"): Scalar(str(rng.choice((1, 1, 2, 2, 3)))),
                    Scalar("get"): Scalar(str(rng.choice((1, 1, 2))))}
            body[Scalar("free_items")] = Flow(spec) if rng.random() < 0.7 else spec
            return "phase1"
        if key == "points":
            every = rng.choice((1, self.values.scale, self.values.scale, 5 * self.values.scale,
                                10 * self.values.scale, 3))
            spec = {Scalar("every"): self.values.amount(every, flow=True),
                    Scalar("award"): Scalar(str(rng.choice((1, 1, 2, 5))))}
            body[Scalar("points")] = Flow(spec) if rng.random() < 0.7 else spec
            return "points"
        if key == "credit":
            toward = self.conditions.items()
            spec = {Scalar("amount"): self.value_spec(credit=True),
                    Scalar("toward"): self.conditions.yaml(toward)}
            flat = isinstance(spec[Scalar("toward")], Scalar) and not isinstance(
                spec[Scalar("amount")], dict) and _plain_ok(toward, flow=True)
            body[Scalar("credit")] = Flow(spec) if flat and rng.random() < 0.6 else spec
            if rng.random() < 0.4:
                body[Scalar("expires")] = Scalar(rng.choice(LIFETIMES))
            return "money2"
        body[Scalar("cashback")] = self.value_spec(credit=False)
        lane = rng.choices(("", "wallet", "instant", "choice"), weights=(35, 15, 25, 25))[0]
        if lane:
            body[Scalar("lane")] = Scalar(lane)
        if lane != "instant":
            if rng.random() < 0.4:
                body[Scalar("vest")] = Scalar(rng.choice(VESTS))
            if rng.random() < 0.4:
                body[Scalar("expires")] = Scalar(rng.choice(LIFETIMES))
        if lane in ("", "wallet"):
            roll = rng.random()
            if roll < 0.25:
                body[Scalar("to")] = Scalar("referrer")
            elif roll < 0.3:
                body[Scalar("to")] = Scalar("customer")
        return "money2"

    def plain_value(self, *, credit: bool) -> YamlValue:
        """A percent, an amount or `{per_unit: X}` (an amount only, for a credit)."""
        rng = self.rng
        roll = rng.random()
        scale = self.values.scale
        if credit or 0.55 <= roll < 0.8:
            minor = rng.choice((0, 1, 3, 5, scale, 2 * scale, 3 * scale, 5 * scale, 10 * scale,
                                rng.choice(self.threshold_pool)))
            return self.values.amount(minor, flow=True)
        if roll < 0.55:
            ppm = rng.choice(PERCENTS_PPM) if rng.random() < 0.85 else rng.randint(0, 1_000_000)
            return self.values.percent(ppm)
        per_unit = rng.choice((0, 1, 10, scale // 10 or 1, scale, 5 * scale))
        return Flow({Scalar("per_unit"): self.values.amount(per_unit, flow=True)})

    def value_spec(self, *, credit: bool) -> YamlValue:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return self.tiers(credit)
        if roll < 0.27:
            return self.keyed(credit)
        return self.plain_value(credit=credit)

    def tiers(self, credit: bool) -> dict[Scalar, YamlValue]:
        rng = self.rng
        body: dict[Scalar, YamlValue] = {}
        if rng.random() < 0.6:
            body[Scalar("basis")] = self.conditions.yaml(self.conditions.basis())
        mins: list[int] = []
        for _ in range(rng.randint(1, 4)):
            minimum = rng.choice(self.threshold_pool)
            if minimum not in mins:
                mins.append(minimum)
        steps: list[YamlValue] = []
        for minimum in mins:
            step = {Scalar("min"): self.values.amount(minimum, flow=True),
                    Scalar("value"): self.plain_value(credit=credit)}
            steps.append(Flow(step) if rng.random() < 0.6 else step)
        body[Scalar("steps")] = steps
        return {Scalar("tiers"): body}

    def keyed(self, credit: bool) -> dict[Scalar, YamlValue]:
        rng = self.rng
        by, pool = rng.choice((("customer.tier", TIERS), ("customer.tier", TIERS),
                               ("order.channel", (*CHANNELS, "")),
                               ("order.fulfillment", FULFILLMENTS), ("order.pop", POPS)))
        keys = rng.sample(pool, rng.randint(1, len(pool)))
        values = {_key(k): self.plain_value(credit=credit) for k in keys}
        by_value: YamlValue = Scalar(by)
        if rng.random() < 0.1:
            by_value = _double(f"({by})")
        return {Scalar("by"): by_value,
                Scalar("values"): Flow(values) if rng.random() < 0.6 else values}

    def cap(self, body: dict[Scalar, YamlValue], kind: str) -> None:
        rng = self.rng
        points = kind == "points"
        cap: dict[Scalar, YamlValue] = {}

        def limit() -> Scalar:
            if points:
                return Scalar(str(rng.choice((0, 1, 5, 20, 100))))
            return self.values.amount(rng.choice((0, 1, 50, self.values.scale,
                                                  5 * self.values.scale,
                                                  rng.choice(self.threshold_pool))), flow=True)

        if Scalar("credit") not in body and rng.random() < 0.6:
            cap[Scalar("line")] = limit()
        if not cap or rng.random() < 0.6:
            cap[Scalar("order")] = limit()
        body[Scalar("cap")] = Flow(cap) if rng.random() < 0.7 else cap

    def stacking(self, drafts: Sequence[_RuleDraft]) -> None:
        """exclusive, explicit stack, and best_of groups that never mix phases or points
        with money (spec 4.6)."""
        rng = self.rng
        groups = {"phase1": ("disc-a", "disc-a", "disc_b"), "money2": ("cash", "cash", "money-b"),
                  "points": ("pts",)}
        for draft in drafts:
            roll = rng.random()
            if roll < 0.15:
                draft.body[Scalar("stacking")] = Scalar("exclusive")
            elif roll < 0.2:
                draft.body[Scalar("stacking")] = Scalar("stack")
            elif roll < 0.5:
                group = rng.choice(groups[draft.kind])
                draft.body[Scalar("stacking")] = Scalar(f"best_of:{group}")


# --- requests -------------------------------------------------------------------------------


class _RequestMaker:
    def __init__(self, rng: random.Random, vocabulary: Vocabulary) -> None:
        self.rng = rng
        self.v = vocabulary
        self.zone = ZoneInfo(vocabulary.zone)

    def make(self) -> str:
        rng = self.rng
        request: dict[str, Json] = {"lines": self.lines()}
        for key, pool in (("channel", CHANNELS), ("fulfillment", FULFILLMENTS), ("pop", POPS)):
            roll = rng.random()
            if roll < 0.65:
                request[key] = rng.choice(pool)
            elif roll < 0.7:
                request[key] = None
        coupons, spent = self.coupons()
        if coupons or rng.random() < 0.2:
            request["coupons"] = coupons
        if spent or rng.random() < 0.1:
            request["spent_coupons"] = spent
        roll = rng.random()
        if roll < 0.7:
            request["customer"] = self.customer()
        elif roll < 0.75:
            request["customer"] = None
        roll = rng.random()
        if roll < 0.6:
            request["prefer"] = rng.choice(("wallet", "instant", "instant"))
        elif roll < 0.65:
            request["prefer"] = None
        request["at"] = self.at()
        if rng.random() < 0.05:
            request["note"] = {"ignored": [1, 2.5, None]}
        keys = list(request)
        if rng.random() < 0.3:
            rng.shuffle(keys)
        return json.dumps({k: request[k] for k in keys}, indent=rng.choice((None, 1)),
                          ensure_ascii=rng.random() < 0.5)

    def lines(self) -> list[dict[str, Json]]:
        rng = self.rng
        skus = self.v.skus
        roll = rng.random()
        if roll < 0.05:
            return []
        if roll < 0.3 and self.v.baskets:
            chosen = list(rng.choice(self.v.baskets))
        else:
            count = rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 12))
            chosen = [(rng.choice(skus), self.qty()) for _ in range(count)]
        if chosen and rng.random() < 0.15:
            chosen.append(rng.choice(chosen))  # the same sku on two lines: two lines
        lines: list[dict[str, Json]] = []
        for sku, qty in chosen:
            line: dict[str, Json] = {"sku": sku, "qty": qty}
            if rng.random() < 0.03:
                line["title"] = "ignored"
            lines.append(line)
        return lines

    def qty(self) -> int:
        rng = self.rng
        if rng.random() < 0.03:
            return rng.choice((99, 1000, 65_536))
        return rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 7, 10))

    def variant(self, code: str) -> str:
        """The same code as a shopper might type it: case and whitespace do not count."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            code = code.upper()
        elif roll < 0.35:
            code = code.lower()
        elif roll < 0.45:
            code = code.swapcase()
        if rng.random() < 0.3:
            code = rng.choice((" ", "\t", "\u00a0", "  ")) + code + rng.choice(("", " ", "\n"))
        if rng.random() < 0.1 and len(code) > 2:
            code = code[:1] + " " + code[1:]
        return code

    def coupons(self) -> tuple[list[str], list[str]]:
        rng = self.rng
        coupons: list[str] = []
        spent: list[str] = []
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3, 4))):
            roll = rng.random()
            if roll < 0.6 and self.v.codes:
                code = self.variant(rng.choice(self.v.codes))
                if rng.random() < 0.2:
                    spent.append(self.variant(code))
            elif roll < 0.7 and self.v.prefixes:
                code = rng.choice(self.v.prefixes) + "ABC12345"
            elif roll < 0.8:
                code = rng.choice(("", "   ", "NOPE", "summer 24"))
            elif coupons:
                code = self.variant(rng.choice(coupons))
            else:
                code = "UNKNOWN-1"
            coupons.append(code)
        if rng.random() < 0.1:
            spent.append("NOT-GIVEN")
        return coupons, spent

    def customer(self) -> dict[str, Json]:
        rng = self.rng
        customer: dict[str, Json] = {}
        if rng.random() < 0.8:
            customer["tier"] = rng.choice((*TIERS, "platinum")) if rng.random() < 0.95 else None
        if rng.random() < 0.8:
            customer["orders"] = rng.choice((0, 0, 1, 2, 5, 100))
        if rng.random() < 0.6:
            customer["tags"] = rng.sample(CUSTOMER_TAGS, rng.randint(0, 2))
        if rng.random() < 0.75:
            customer["referred"] = rng.random() < 0.6
        return customer

    def at(self) -> str:
        rng = self.rng
        roll = rng.random()
        anchor = self.v.anchor
        if roll < 0.45 or not self.v.instants:
            at = anchor + rng.choice((0, 0, 0, -1, 1, 59, -3600, 3600, 86_400, -86_400 * 7))
        elif roll < 0.92:
            at = rng.choice(self.v.instants) + rng.choice((0, 0, -1, 1))
        else:
            gap = self.dst_text()
            if gap is not None:
                return gap
            at = anchor
        return _time_text(rng, at, self.zone, fraction=True)[0]

    def dst_text(self) -> str | None:
        """A local time inside a spring-forward gap or a fall-back overlap."""
        year = _utc(self.v.anchor).year
        changes = _transitions(self.v.zone, year)
        if not changes:
            return None
        at, before, after = self.rng.choice(changes)
        shift = abs(after - before)
        # Both the gap and the overlap end, in local time, at `at` + the larger offset.
        wall = _wall(at, max(before, after)) - timedelta(seconds=self.rng.randint(1, shift))
        return _clock(wall, with_seconds=self.rng.random() < 0.5)
