"""Fuzzing every reader of untrusted input: the only acceptable outcomes are success or an
`InputError` that names a field (and, for an expression, a column inside its text).

Inputs are random (hypothesis) and mutations of the spec examples' files (a seeded mutator:
byte flips, deletions, duplications, insertions of troublesome tokens, lines spliced in from
other examples, and values or keys replaced by ones that keep the file well formed so that
the checks behind the syntax are reached). Every call runs under a time budget enforced with SIGALRM, so a hang fails
the test instead of stalling it. The default run is a few thousand inputs; the `slow` run is
twenty times larger.
"""

from __future__ import annotations

import json
import random
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, lru_cache, partial
from types import FrameType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poprules.errors import InputError
from poprules.jsonio import load_object
from poprules.request import parse_request
from tests.conftest import example_dirs
from wasm_build.lang.ast import Type
from wasm_build.lang.catalog import parse_catalog_csv, parse_catalog_json
from wasm_build.lang.fields import ID
from wasm_build.lang.model import Catalog, Program
from wasm_build.lang.program import parse_program
from wasm_build.lang.syntax import ExprError, LiteralContext, parse
from wasm_build.lang.typecheck import Checker, Scope

T = TypeVar("T")
BUDGET = 5.0  # seconds per call: generous, since only a hang should ever come near it
DEFAULT_MUTANTS = 1000
SLOW_FACTOR = 20
LISBON = ZoneInfo("Europe/Lisbon")


# --- the harness -------------------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` under test eats it."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_error(err: InputError) -> None:
    """The contract of spec 9.3 for any error, whatever the input."""
    assert isinstance(err.field, str) and err.field, f"empty field: {err!r}"
    assert isinstance(err.message, str) and err.message
    if err.rule is not None:
        assert ID.fullmatch(err.rule), f"rule {err.rule!r} is not a valid id"
    shown = err.to_json()
    json.dumps(shown)
    assert shown["field"] == err.field
    if err.text is not None:
        assert isinstance(err.column, int)
        assert 1 <= err.column <= len(err.text) + 1, f"column {err.column} outside {err.text!r}"
    else:
        assert "column" not in shown


def outcome(call: Callable[[], T], data: object, budget: float = BUDGET) -> T | InputError:
    """Run `call` on one input: return its result or its InputError; anything else fails."""
    try:
        with time_budget(budget):
            return call()
    except InputError as err:
        check_error(err)
        return err
    except Hang:
        raise AssertionError(f"took more than {budget}s on {data!r:.2000}") from None
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc} on {data!r:.2000}") from exc


def expression_outcome(text: str, scope: Scope, expected: Type, places: int = 2) -> None:
    checker = Checker({"on_sale": Type.BOOL, "weight_g": Type.INT, "cost": Type.MONEY}, places)
    ctx = LiteralContext(places, LISBON)

    def run() -> None:
        try:
            checker.check(parse(text, ctx), scope, expected)
        except ExprError as err:
            assert 1 <= err.column <= len(text) + 1, f"column {err.column} outside {text!r}"
            assert err.message

    outcome(run, text)


# --- seeds: the spec examples ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def examples() -> dict[str, list[bytes]]:
    cases = example_dirs()
    files = {
        "program": [case.joinpath("program.yaml").read_bytes() for case in cases],
        "catalog": [case.joinpath("catalog.json").read_bytes() for case in cases],
        "request": [case.joinpath("request.json").read_bytes() for case in cases],
    }
    files["csv"] = [csv_of(data) for data in files["catalog"]] + [
        (b"sku,title,price,category,brand,tags,on_sale:bool,weight_g:int\n"
         b"TEE-01,Organic tee,19.90,apparel,ana,organic;local,false,180\n"
         b'"MUG,02", "Clay ""mug""" ,7.45,home,,,TRUE,-5\n\n'),
        b"\xef\xbb\xbfsku,price,category,cost:money,origin:string\r\nA,0,x,1.50,pt\r\n",
    ]
    return files


def csv_of(catalog: bytes) -> bytes:
    """The same items as a CSV catalog (spec 1.2), so CSV mutations start from valid files."""
    document = json.loads(catalog)
    attributes: dict[str, str] = document.get("attributes", {})
    columns = ["sku", "title", "price", "category", "brand", "tags"]
    header = columns + [f"{name}:{kind}" for name, kind in attributes.items()]
    rows = [",".join(header)]
    for item in document["items"]:
        cells = [str(item.get(c, "")) if c != "tags" else ";".join(item.get("tags", []))
                 for c in columns]
        cells += [json.dumps(item[a]) if a in item else "" for a in attributes]
        rows.append(",".join(cells))
    return ("\n".join(rows) + "\n").encode()


@lru_cache(maxsize=1)
def conditions() -> list[str]:
    """Every condition written in the examples, and a few that reach every construct."""
    found: list[str] = []
    for data in examples()["program"]:
        for line in data.decode().splitlines():
            m = re.match(r"\s*-?\s*(when|items|toward|basis|by):\s*(.+)$", line)
            if m:
                found.append(m.group(2).strip().strip("'"))
    return found + [
        'not (order.subtotal >= 20.00 and "vip" in customer.tags) or sum(item.qty) > 3',
        "order.now >= 2026-07-01T09:00+01:00 and customer.orders in [0, 1]",
        "sum(item.net, item.category != \"sale\") * 2 - 5 >= 10.5 + 1",
        "any(item.weight_g > 100 and not item.on_sale) and all(item.cost <= 3)",
        '10% == 10.00% and order.channel not in ["web", "a\\"b\\\\"]',
    ]


# --- the mutator -------------------------------------------------------------------------------


TROUBLE = [
    b"{", b"}", b"[", b"]", b"(", b")", b"'", b'"', b":", b": ", b"- ", b",", b"\n", b"\t",
    b"\r", b"\x00", b"\xff", b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\\", b"&a ", b"*a", b"!!int ",
    b"? ", b"~", b"null", b"true", b"NO", b"1.005", b"0.00001%", b"9" * 60, b"-1", b"1e309",
    b"NaN", b"2026-02-30T00:00", b"2026-07-01", b"24:00", b"best_of:g", b"((((((", b"not ",
    b" and ", b" in ", b"sum(", b"item.", b"order.", b"%", b"\xef\xbb\xbf", b"id: r\n",
    b'"qty": 2.0', b'"qty": 1', b'"sku": 1', b"\"\": null", b";", b"::", b"\xe2\x80\xa8",
]


# Values that keep a file well formed but test one check each: most byte edits break the
# syntax, so three edits in four replace a value (or a key) on a `key: value` line, a value
# inside a JSON document, or a CSV cell, instead.
YAML_VALUES = [
    b"1.005", b"0", b"-1", b"+5", b'"5"', b"5.0", b"1e3", b"[]", b"{}", b"~", b'""', b"true",
    b"NO", b"null", b"2026-02-30T00:00", b"2026-07-01", b"2026-07-01T09:00+24:00",
    b"0.00001%", b"10.00000%", b"101%", b"best_of:x", b"exclusive", b"instant", b"choice",
    b"referrer", b"1d12h", b"0d", b"30D", b'"09:00-09:00"', b'"24:00-02:00"', b'"22:00-02:00"',
    b"[mon, xyz]", b"[SAT]", b"{buy: 0, get: 1}", b"{every: 0, award: 1}", b"{per_unit: 1}",
    b"{line: 1, order: 2}", b"order.units", b"item.qty > 1", b"any(item.qty > 1)",
    b"customer.tier", b"sum(item.net) >= 5 * 10", b'"vip" in customer.tags', b"[1, 2]",
    b'{"sku": "TEE-01", "qty": 1}', b'[{"sku": "TEE-01", "qty": 0}]', b"XAU", b"JPY",
    b"Mars/Base", b"Etc/UTC", b"half_up", b"9" * 40,
    b"{tiers: {steps: [{min: 5, value: 1%}, {min: 5, value: 2%}]}}",
    b"{by: customer.tier, values: {gold: 1%, true: 2%}}",
]
JSON_VALUES = [
    b"1.005", b"0", b"-1", b"2.0", b"1e3", b"1E400", b"-0", b"[]", b"{}", b"null", b'""',
    b"true", b'"TEE-01"', b'"2026-02-30T00:00"', b'"2026-07-01"', b'"2026-07-04T10:00:00Z"',
    b'"2026-07-04T10:00+24:00"', b'"0001-01-01T00:00+01:00"', b'"19.90"', b'" 19.90 "',
    b'"1.005"', b'"-1.00"', b'"bool"', b'"money"', b'"int"', b'"float"', b'"instant"',
    b'["a", 1]', b'[{"sku": "TEE-01", "qty": 1}]', b'{"sku": "TEE-01", "qty": 0}',
    b'{"on_sale": "bool", "sku": "int"}', b'{"tier": 1}', b'"\\ud800"', b'"caf\\u00e9"',
    b"9" * 40, b'"' + b"9" * 40 + b'"',
]
CSV_VALUES = [b"", b" ", b"1.005", b"-1", b"TRUE", b"yes", b"x:bool", b"x:float", b"price:int",
              b'"a,b"', b'"unclosed', b"a;;b", b"9" * 40, b"sku", b"19.90", b"+7", b"\xc3\xa9"]
KEY_VALUE = re.compile(rb"^(\s*-?\s*\"?)([A-Za-z_]+)(\"?:\s*)(.*?)(,?)$")


def replace_on_a_line(rng: random.Random, data: bytes, others: list[bytes],
                      values: list[bytes]) -> bytes:
    """Replace the value (or, sometimes, the key) of one `key: value` line, or a CSV cell."""
    lines = data.splitlines(keepends=True)
    # Not a key whose value is the block below it (`rules:`): that would break the syntax.
    matches = [KEY_VALUE.match(line.rstrip(b"\r\n")) for line in lines]
    spots = [i for i, m in enumerate(matches) if m is not None and m.group(4)]
    if not spots:
        if not lines:
            return data
        i = rng.randrange(len(lines))
        cells = lines[i].split(b",")
        cells[rng.randrange(len(cells))] = rng.choice(values)
        lines[i] = b",".join(cells)
        return b"".join(lines)
    i = rng.choice(spots)
    body = lines[i].rstrip(b"\r\n")
    m = KEY_VALUE.match(body)
    assert m is not None
    indent, key, colon, _, comma = m.groups()
    if rng.random() < 0.2:
        key = rng.choice([b"lane", b"vest", b"expires", b"to", b"cap", b"coupon", b"stacking",
                          b"priority", b"discount", b"cashback", b"bogus", b"id", b"sku"])
    value = rng.choice(values)
    if rng.random() < 0.3:  # a value from another example's line
        theirs = [KEY_VALUE.match(line.rstrip(b"\r\n")) for line in
                  rng.choice(others).splitlines()]
        found = [t.group(4) for t in theirs if t is not None and t.group(4)]
        value = rng.choice(found) if found else value
    lines[i] = indent + key + colon + value + comma + lines[i][len(body):]
    return b"".join(lines)


def replace_in_json(rng: random.Random, data: bytes, values: list[bytes]) -> bytes | None:
    """Replace one value anywhere in a JSON document, or add or drop a key; None when the
    document is no longer JSON."""
    try:
        document = json.loads(data)
    except ValueError:
        return None
    holders: list[tuple[Any, Any]] = [(None, None)]
    stack = [document]
    while stack:
        node = stack.pop()
        keys = range(len(node)) if isinstance(node, list) else node if isinstance(
            node, dict) else ()
        for key in keys:
            holders.append((node, key))
            stack.append(node[key])
    holder, key = rng.choice(holders)
    new = json.loads(rng.choice(values))
    if holder is None:
        return json.dumps(new).encode()
    if isinstance(holder, dict) and rng.random() < 0.2:
        del holder[key]
    elif isinstance(holder, dict) and rng.random() < 0.2:
        holder[rng.choice(["sku", "qty", "price", "category", "at", "tier", "x", ""])] = new
    else:
        holder[key] = new
    return json.dumps(document, ensure_ascii=rng.random() < 0.5).encode(
        errors="surrogatepass")


def mutate(rng: random.Random, data: bytes, others: list[bytes],
           values: list[bytes] = YAML_VALUES) -> bytes:
    """One to four random edits of `data`; splices take lines from `others`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.75:
            edited = replace_in_json(rng, bytes(out), values) if values is JSON_VALUES else None
            if edited is None:
                edited = replace_on_a_line(rng, bytes(out), others, values)
            out = bytearray(edited)
            continue
        n = len(out)
        op = rng.randrange(8)
        i = rng.randint(0, n)
        j = rng.randint(i, min(n, i + rng.choice([1, 2, 8, 64])))
        if op == 0 and n:  # flip a byte
            k = rng.randrange(n)
            out[k] = rng.choice([out[k] ^ (1 << rng.randrange(8)), rng.randrange(256)])
        elif op == 1:  # delete a range
            del out[i:j]
        elif op == 2:  # duplicate a range
            out[i:i] = out[i:j]
        elif op == 3:  # insert a troublesome token
            out[i:i] = rng.choice(TROUBLE)
        elif op == 4:  # splice a line from another example
            lines = rng.choice(others).splitlines(keepends=True)
            if lines:
                out[i:i] = rng.choice(lines)
        elif op == 5:  # replace a line with one from another example
            mine = bytes(out).splitlines(keepends=True)
            theirs = rng.choice(others).splitlines(keepends=True)
            if mine and theirs:
                mine[rng.randrange(len(mine))] = rng.choice(theirs)
                out = bytearray(b"".join(mine))
        elif op == 6:  # swap two lines
            mine = bytes(out).splitlines(keepends=True)
            if len(mine) > 1:
                a, b = rng.randrange(len(mine)), rng.randrange(len(mine))
                mine[a], mine[b] = mine[b], mine[a]
                out = bytearray(b"".join(mine))
        else:  # change a digit or a letter into a neighbour of its class
            spots = [k for k, ch in enumerate(out) if chr(ch).isalnum()]
            if spots:
                k = rng.choice(spots)
                out[k] = ord(rng.choice("0123456789" if chr(out[k]).isdigit() else "aZ_.%-"))
    return bytes(out)


POOLS = {"program": YAML_VALUES, "catalog": JSON_VALUES, "request": JSON_VALUES,
         "csv": CSV_VALUES}


def mutants(kind: str, count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(f"{kind}-{seed}")
    seeds = examples()[kind]
    yield from seeds
    for _ in range(count):
        yield mutate(rng, rng.choice(seeds), seeds, POOLS[kind])


# --- the readers under test --------------------------------------------------------------------


@cache
def example_catalog(currency: str) -> Catalog:
    """Every example's items and attributes in one catalog, so any example program (or a
    line spliced from one) finds its names; prices in cents only fit two-decimal currencies."""
    attributes: dict[str, str] = {}
    items: dict[str, Any] = {}
    for data in examples()["catalog"]:
        document = json.loads(data)
        attributes.update(document.get("attributes", {}))
        items.update({item["sku"]: item for item in document["items"]})
    merged = {"attributes": attributes,
              "items": list(items.values()) if currency in ("EUR", "USD") else []}
    return parse_catalog_json(json.dumps(merged).encode(), currency=currency)


def read_program(data: bytes, json_syntax: bool = False) -> Program:
    return parse_program(data, json_syntax=json_syntax, catalog=example_catalog)


def read_request(data: bytes) -> object:
    catalog = example_catalog("EUR")
    return parse_request(load_object(data, "request"), skus=catalog.by_sku, zone=LISBON)


def check_programs(count: int) -> None:
    results = [outcome(partial(read_program, data), data)
               for data in mutants("program", count, seed=1)]
    assert sum(isinstance(r, Program) for r in results) >= len(examples()["program"])
    assert sum(isinstance(r, InputError) for r in results) > count // 2


def check_json_programs(count: int) -> None:
    documents = []
    for data in examples()["program"]:
        documents.append(json.dumps(yaml.safe_load(data), default=str).encode())
    rng = random.Random(2)
    for i in range(count + len(documents)):
        data = documents[i] if i < len(documents) else mutate(
            rng, rng.choice(documents), documents, JSON_VALUES)
        outcome(partial(read_program, data, json_syntax=True), data)


def check_catalogs(count: int) -> None:
    for data in mutants("catalog", count, seed=3):
        outcome(partial(parse_catalog_json, data, currency="EUR"), data)
    for data in mutants("csv", count, seed=4):
        outcome(partial(parse_catalog_csv, data, currency="EUR"), data)


def check_requests(count: int) -> None:
    results = [outcome(partial(read_request, data), data)
               for data in mutants("request", count, seed=5)]
    assert any(isinstance(r, InputError) for r in results)


def check_conditions(count: int) -> None:
    rng = random.Random(6)
    corpus = [c.encode() for c in conditions()]
    tokens = [t.encode() for t in TOKENS]
    for _ in range(count):
        data = mutate(rng, rng.choice(corpus), corpus, tokens)
        text = data.decode("utf-8", errors="replace")
        scope = rng.choice([Scope.ORDER, Scope.ITEM])
        expected = rng.choice([Type.BOOL, Type.BOOL, Type.MONEY, Type.STRING])
        expression_outcome(text, scope, expected, places=rng.choice([0, 2, 3]))


# --- default run -------------------------------------------------------------------------------


def test_examples_load() -> None:
    """The seeds are valid: mutations start from programs that load."""
    for data in examples()["program"]:
        assert isinstance(outcome(partial(read_program, data), data), Program)
    for data in examples()["csv"]:
        assert isinstance(outcome(partial(parse_catalog_csv, data, currency="EUR"), data),
                          Catalog)


def test_mutated_programs() -> None:
    check_programs(DEFAULT_MUTANTS * 2)


def test_mutated_json_programs() -> None:
    check_json_programs(DEFAULT_MUTANTS // 2)


def test_mutated_catalogs() -> None:
    check_catalogs(DEFAULT_MUTANTS // 2)


def test_mutated_requests() -> None:
    check_requests(DEFAULT_MUTANTS)


def test_mutated_conditions() -> None:
    check_conditions(DEFAULT_MUTANTS * 2)


def test_time_budget_catches_a_hang() -> None:
    def spin() -> None:
        while True:
            pass

    with pytest.raises(AssertionError, match="took more than"):
        outcome(spin, "spin", budget=0.05)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = ["order.subtotal", "order.net", "order.units", "order.lines", "order.channel",
         "order.now", "customer.known", "customer.tier", "customer.orders", "customer.tags",
         "item.sku", "item.tags", "item.price", "item.qty", "item.on_sale", "item.weight_g",
         "item.cost", "item.title", "order.bogus"]
TOKENS = NAMES + ["5", "0", "9.99", "1.005", "10%", '"web"', '""', "true", "false",
                  "2026-07-01T09:00", "2026-07-01T09:00Z", "==", "!=", "<", "<=", ">", ">=",
                  "+", "-", "*", "and", "or", "not", "in", "not in", "(", ")", "[", "]", ",",
                  "count(", "sum(", "any(", "all(", "AND", "/", "'", "30d"]


@FUZZ
@given(st.text(max_size=80), st.sampled_from(list(Scope)),
       st.sampled_from([Type.BOOL, Type.MONEY, Type.STRING]))
def test_random_text_conditions(text: str, scope: Scope, expected: Type) -> None:
    expression_outcome(text, scope, expected)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join),
       st.sampled_from(list(Scope)), st.sampled_from([Type.BOOL, Type.MONEY, Type.STRING]))
def test_token_soup_conditions(text: str, scope: Scope, expected: Type) -> None:
    expression_outcome(text, scope, expected)


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_programs(data: bytes, json_syntax: bool) -> None:
    outcome(lambda: read_program(data, json_syntax), data)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_programs(text: str) -> None:
    outcome(lambda: read_program(text.encode("utf-8", errors="surrogatepass")), text)


SCALARS = st.one_of(
    st.sampled_from(["5%", "5.00", "1.005", "0", "-1", "30d", "0d", "1d12h", "true", "wallet",
                     "instant", "choice", "referrer", "best_of:g", "exclusive", "summer",
                     "order.subtotal >= 20", "item.category == \"socks\"", "customer.tier",
                     "2026-07-01T09:00", "2026-07-01", "09:00-18:00", "24:00-01:00", "mon",
                     "EUR", "Europe/Lisbon", "half_up", "", "NO", "404", "r"]),
    st.integers(-3, 600), st.booleans(), st.none(),
)
KEYS = ["id", "title", "priority", "active", "when", "items", "coupon", "discount",
        "free_items", "cashback", "points", "credit", "lane", "vest", "expires", "to", "cap",
        "stacking", "from", "until", "days", "hours", "buy", "get", "every", "award", "amount",
        "toward", "tiers", "basis", "steps", "min", "value", "by", "values", "per_unit", "line",
        "order", "codes", "generate", "count", "length", "prefix", "max_redemptions",
        "per_customer", "bogus"]
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12,
)
PROGRAMS = st.fixed_dictionaries(
    {"program": st.sampled_from(["shop", "Shop"]), "currency": st.sampled_from(["EUR", "JPY"]),
     "timezone": st.sampled_from(["Europe/Lisbon", "UTC"])},
    optional={
        "rounding": SCALARS,
        "coupons": st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5)
                            .map(lambda d: {"id": "summer", **d}), max_size=2),
        "rules": st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)
                          .map(lambda d: {"id": "r", **d}), max_size=3),
    },
)


@FUZZ
@given(PROGRAMS, st.booleans())
def test_structured_programs(document: dict[str, Any], json_syntax: bool) -> None:
    data = (json.dumps(document) if json_syntax else yaml.safe_dump(document)).encode()
    outcome(lambda: read_program(data, json_syntax), data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_catalogs(data: bytes) -> None:
    outcome(lambda: parse_catalog_json(data, currency="EUR"), data)
    outcome(lambda: parse_catalog_csv(data, currency="EUR"), data)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["TEE-01", "MUG-02", "2026-07-04T10:00",
                                                     "wallet", "19.90", "1.005"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(
                                ["sku", "qty", "price", "category", "items", "attributes",
                                 "currency", "lines", "at", "customer", "tier", "orders",
                                 "tags", "referred", "coupons", "prefer", "title", "on_sale"])
                                | st.text(max_size=5), inner, max_size=5)),
    max_leaves=15,
)


@FUZZ
@given(JSON)
def test_structured_catalogs_and_requests(value: Any) -> None:
    data = json.dumps(value).encode()
    outcome(lambda: parse_catalog_json(data, currency="EUR"), data)
    outcome(lambda: read_request(data), data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_requests(data: bytes) -> None:
    outcome(lambda: read_request(data), data)


# --- the long run ------------------------------------------------------------------------------


@pytest.mark.slow
def test_slow_mutated_programs() -> None:
    check_programs(DEFAULT_MUTANTS * 2 * SLOW_FACTOR)
    check_json_programs(DEFAULT_MUTANTS // 2 * SLOW_FACTOR)


@pytest.mark.slow
def test_slow_mutated_catalogs_and_requests() -> None:
    check_catalogs(DEFAULT_MUTANTS // 2 * SLOW_FACTOR)
    check_requests(DEFAULT_MUTANTS * SLOW_FACTOR)


@pytest.mark.slow
def test_slow_mutated_conditions() -> None:
    check_conditions(DEFAULT_MUTANTS * 2 * SLOW_FACTOR)


@pytest.mark.slow
@settings(max_examples=3_000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(PROGRAMS, st.booleans())
def test_slow_structured_programs(document: dict[str, Any], json_syntax: bool) -> None:
    data = (json.dumps(document) if json_syntax else yaml.safe_dump(document)).encode()
    outcome(lambda: read_program(data, json_syntax), data)


@pytest.mark.slow
@settings(max_examples=3_000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join),
       st.sampled_from(list(Scope)), st.sampled_from([Type.BOOL, Type.MONEY, Type.STRING]))
def test_slow_token_soup_conditions(text: str, scope: Scope, expected: Type) -> None:
    expression_outcome(text, scope, expected)
