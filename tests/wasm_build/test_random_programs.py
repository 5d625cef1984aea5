"""The random program generator: every case it makes is valid, and together its cases reach
every feature of the spec (the differential tests against WebAssembly rely on both)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from poprules import api
from poprules.errors import InputError
from wasm_build.lang import ast
from wasm_build.lang.model import (
    Amount,
    Cashback,
    Credit,
    Discount,
    Keyed,
    Lane,
    Percent,
    PerUnit,
    Points,
    Program,
    Stacking,
    Tiers,
    ValueSpec,
)
from wasm_build.random_program import Case, generate_case, generate_program, generate_request

FAST_SEEDS = range(300)
SLOW_SEEDS = range(300, 5_300)
COVERAGE_SEEDS = range(500)


def quote_case(case: Case, directory: Path) -> tuple[Program, dict[str, Any]]:
    program_path, catalog_path, request_path = case.write(directory)
    program = api.load(program_path, catalog_path)
    return program, api.quote(program, request_path)


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_generated_case_loads_and_quotes(seed: int, tmp_path: Path) -> None:
    case = generate_case(seed)
    program, quote = quote_case(case, tmp_path)
    assert sorted(r["rule"] for r in quote["rules"]) == sorted(r.id for r in program.rules)
    assert len(quote["lines"]) == len(json.loads(case.request_json)["lines"])
    json.dumps(quote, allow_nan=False)  # the answer is plain JSON


@pytest.mark.slow
def test_thousands_of_generated_cases_load_and_quote(tmp_path: Path) -> None:
    failures: list[tuple[int, str]] = []
    for seed in SLOW_SEEDS:
        try:
            quote_case(generate_case(seed), tmp_path)
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its seed
            failures.append((seed, repr(exc)))
    assert failures == []


def test_generation_is_a_function_of_the_seed() -> None:
    assert generate_case(17) == generate_case(17)
    assert generate_case(17, rules=3, items=4) == generate_case(17, rules=3, items=4)
    assert len({generate_case(seed).program_yaml for seed in range(20)}) == 20


def test_sizes_can_be_fixed_for_load_tests(tmp_path: Path) -> None:
    generated = generate_program(7, rules=100, items=2_000)
    program_path, catalog_path = tmp_path / "program.yaml", tmp_path / "catalog.json"
    program_path.write_text(generated.program_yaml, encoding="utf-8")
    catalog_path.write_text(generated.catalog_json, encoding="utf-8")
    program = api.load(program_path, catalog_path)
    assert len(program.rules) == 100
    assert len(program.catalog.items) == 2_000
    requests = {generate_request(generated, seed) for seed in range(10)}
    assert len(requests) == 10
    for request in requests:
        assert len(api.quote(program, request.encode())["rules"]) == 100


def test_generated_requests_are_valid_for_their_program(tmp_path: Path) -> None:
    generated = generate_program(3)
    program_path, catalog_path = tmp_path / "program.yaml", tmp_path / "catalog.json"
    program_path.write_text(generated.program_yaml, encoding="utf-8")
    catalog_path.write_text(generated.catalog_json, encoding="utf-8")
    program = api.load(program_path, catalog_path)
    for seed in range(50):
        try:
            api.quote(program, generate_request(generated, seed).encode())
        except InputError as exc:
            pytest.fail(f"request seed {seed}: {exc.to_json()}")


# --- feature coverage -----------------------------------------------------------------------

STATUSES = ("applied", "capped", "not_eligible", "no_items", "superseded", "inactive",
            "coupon_required")
COUPON_STATUSES = ("unknown", "expired", "spent", "valid", "not_applicable")

REQUIRED = frozenset({
    *(f"status:{s}" for s in STATUSES),
    *(f"coupon:{s}" for s in COUPON_STATUSES),
    "nudge:when", "nudge:tiers",
    *(f"places:{p}" for p in (0, 2, 3, 4)),
    *(f"zone:{z}" for z in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC",
                             "Asia/Kolkata")),
    *(f"rounding:{m}" for m in ("half_even", "half_up", "down")),
    # every reward form, computed
    *(f"reward:{k}:{f}" for k in ("discount", "cashback")
      for f in ("percent", "amount", "per_unit", "tiers", "keyed")),
    "reward:credit:amount", "reward:credit:tiers", "reward:credit:keyed",
    "reward:free_items", "reward:points",
    "amount:zero", "wallet:entry", "credit:entry", "credit:expires",
    # lanes and receivers
    "lane:instant", "lane:wallet", "lane:choice->instant", "lane:choice->wallet",
    "to:referrer", "cashback:vest", "cashback:expires",
    # why a rule is not eligible
    "not_eligible:when", "not_eligible:referrer", "not_eligible:tier", "not_eligible:key",
    # tier bases
    "tiers:basis-default", "tiers:basis-spend", "tiers:basis-other",
    # caps
    "cap:line", "cap:order", "capped:points", "capped:credit", "capped:zero",
    # stacking
    "stacking:exclusive", "stacking:blocked", "stacking:best_of-winner",
    "stacking:best_of-loser",
    # schedules, both holding and not
    *(f"schedule:{p}:{s}" for p in ("from", "until", "days", "hours", "wrap", "24:00")
      for s in ("active", "inactive")),
    # conditions of evaluated rules: every operator, literal kind and aggregate
    *(f"op:{o}" for o in ("and", "or", "not", "()", "==", "!=", "<", "<=", ">", ">=",
                          "in-list", "not-in-list", "empty-list", "in-set", "not-in-set",
                          "+:money", "-:money", "*:money", "+:int", "*:int")),
    *(f"literal:{t}" for t in ("money", "int", "int-as-money", "string", "bool", "time",
                                "percent")),
    *(f"aggregate:{a}" for a in ("count", "sum", "sum-if", "any", "all")),
    *(f"name:{n}" for n in ("order.subtotal", "order.net", "order.units", "order.lines",
                             "order.channel", "order.fulfillment", "order.pop", "order.now",
                             "customer.known", "customer.tier", "customer.orders",
                             "customer.tags", "customer.referred", "item.sku",
                             "item.category", "item.brand", "item.tags", "item.price",
                             "item.base", "item.net", "item.qty")),
    *(f"attribute:{t}" for t in ("bool", "int", "money", "string")),
    # lines and requests
    "line:net-zero", "line:price-zero", "request:no-lines", "request:no-customer",
    "request:same-sku-twice", "request:duplicate-code", "request:prefer-instant",
})


def _children(node: ast.Node) -> list[ast.Node]:
    if isinstance(node, ast.Paren):
        return [node.inner]
    if isinstance(node, ast.Not):
        return [node.operand]
    if isinstance(node, ast.Logic):
        return list(node.operands)
    if isinstance(node, (ast.Compare, ast.Arith)):
        return [node.left, node.right]
    if isinstance(node, ast.InList):
        return [node.value, *node.items]
    if isinstance(node, ast.InSet):
        return [node.value, node.collection]
    if isinstance(node, ast.Aggregate):
        return [n for n in (node.value, node.condition) if n is not None]
    return []


def _walk(node: ast.Node) -> Iterator[ast.Node]:
    yield node
    for child in _children(node):
        yield from _walk(child)


def _expression_features(text: str, root: ast.Node, attributes: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    for node in _walk(root):
        if isinstance(node, ast.Logic):
            seen.add(f"op:{node.op}")
        elif isinstance(node, ast.Not):
            seen.add("op:not")
        elif isinstance(node, ast.Paren):
            seen.add("op:()")
        elif isinstance(node, ast.Compare):
            seen.add(f"op:{node.op}")
        elif isinstance(node, ast.Arith):
            assert node.type is not None
            seen.add(f"op:{node.op}:{node.type.value}")
        elif isinstance(node, ast.InList):
            seen.add("op:not-in-list" if node.negated else "op:in-list")
            if not node.items:
                seen.add("op:empty-list")
        elif isinstance(node, ast.InSet):
            seen.add("op:not-in-set" if node.negated else "op:in-set")
        elif isinstance(node, ast.Aggregate):
            seen.add(f"aggregate:{node.func}")
            if node.func == "sum" and node.condition is not None:
                seen.add("aggregate:sum-if")
        elif isinstance(node, ast.Const):
            seen.add(f"literal:{node.type.value}")
            if node.type is ast.Type.MONEY and "." not in text[node.start:node.end]:
                seen.add("literal:int-as-money")
        elif isinstance(node, ast.Name):
            field = node.name.removeprefix("item.")
            if field in attributes:
                seen.add(f"attribute:{attributes[field].value}")
            else:
                seen.add(f"name:{node.name}")
    return seen


def _is_spend(node: ast.Node) -> bool:
    node = ast.strip_parens(node)
    if isinstance(node, ast.Name):
        return node.name in ("order.subtotal", "order.net")
    return isinstance(node, ast.Aggregate) and node.func == "sum" and node.type is ast.Type.MONEY


def _form(spec: ValueSpec) -> str:
    forms: dict[type, str] = {Percent: "percent", Amount: "amount", PerUnit: "per_unit",
                              Tiers: "tiers", Keyed: "keyed"}
    return forms[type(spec)]


def observe(program: Program, request: dict[str, Any], quote: dict[str, Any]) -> set[str]:
    """The features of the spec that one quote actually exercised."""
    seen = {f"places:{program.places}", f"zone:{program.timezone}",
            f"rounding:{program.rounding.value}"}
    seen |= {f"status:{r['status']}" for r in quote["rules"]}
    seen |= {f"coupon:{c['status']}" for c in quote["coupons"]}
    reports = {r["rule"]: r for r in quote["rules"]}
    prefer = request.get("prefer") or "wallet"
    attributes = dict(program.catalog.attributes)
    groups: dict[str, list[str]] = {}
    for rule in program.rules:
        report = reports[rule.id]
        status = report["status"]
        computed = status in ("applied", "capped")
        reward = rule.reward
        spec: ValueSpec | None = None
        if isinstance(reward, (Discount, Cashback)):
            spec = reward.value
        elif isinstance(reward, Credit):
            spec = reward.amount
        if computed:
            seen.add(f"reward:{reward.key}" + (f":{_form(spec)}" if spec is not None else ""))
            if report["amount"] == 0:
                seen.add("amount:zero")
        if isinstance(spec, Tiers) and status not in ("inactive", "coupon_required"):
            default = spec.basis.text == "order.subtotal" and spec.basis.node.end == 14
            seen.add("tiers:basis-default" if default else
                     "tiers:basis-spend" if _is_spend(spec.basis.node) else "tiers:basis-other")
        if isinstance(reward, Cashback) and computed:
            lane = reward.lane.value
            seen.add(f"lane:{lane}->{prefer}" if reward.lane is Lane.CHOICE else f"lane:{lane}")
            if reward.to_referrer:
                seen.add("to:referrer")
            if reward.vest and reward.lane is not Lane.INSTANT:
                seen.add("cashback:vest")
            if reward.expires is not None:
                seen.add("cashback:expires")
        if isinstance(reward, Credit) and computed and reward.expires is not None:
            seen.add("credit:expires")
        if status == "not_eligible":
            failed = report["failed"]
            if failed == "customer.referred" and rule.when is None:
                seen.add("not_eligible:referrer")
            elif isinstance(spec, Keyed) and failed == spec.by.text:
                seen.add("not_eligible:key")
            elif isinstance(spec, Tiers) and failed.startswith(f"{spec.basis.text} >= "):
                seen.add("not_eligible:tier")
            else:
                seen.add("not_eligible:when")
        if rule.cap.line is not None:
            seen.add("cap:line")
        if rule.cap.order is not None:
            seen.add("cap:order")
        if status == "capped":
            if isinstance(reward, (Points, Credit)):
                seen.add(f"capped:{reward.key}")
            if rule.cap.order == 0:
                seen.add("capped:zero")
        if rule.stacking is Stacking.EXCLUSIVE and computed:
            seen.add("stacking:exclusive")
        if rule.stacking is not Stacking.BEST_OF and status == "superseded":
            seen.add("stacking:blocked")
        if rule.group is not None:
            groups.setdefault(rule.group, []).append(status)
        if rule.active is not None:
            schedule = rule.active
            parts = [name for name, part in (("from", schedule.start), ("until", schedule.until),
                                             ("days", schedule.days), ("hours", schedule.hours))
                     if part is not None]
            if schedule.hours is not None:
                if schedule.hours[0] > schedule.hours[1]:
                    parts.append("wrap")
                if schedule.hours[1] == 86_400:
                    parts.append("24:00")
            state = "inactive" if status == "inactive" else "active"
            seen |= {f"schedule:{part}:{state}" for part in parts}
        if status not in ("inactive", "coupon_required"):
            expressions = [rule.when, rule.items]
            if isinstance(spec, Tiers):
                expressions.append(spec.basis)
            if isinstance(spec, Keyed):
                expressions.append(spec.by)
            if isinstance(reward, Credit):
                expressions.append(reward.toward)
            for expression in expressions:
                if expression is not None:
                    seen |= _expression_features(expression.text, expression.node, attributes)
    for statuses in groups.values():
        if len(statuses) > 1 and {"applied", "capped"} & set(statuses):
            seen.add("stacking:best_of-winner")
            if "superseded" in statuses:
                seen.add("stacking:best_of-loser")
    for nudge in quote["nudges"]:
        nudged = next(r for r in program.rules if r.id == nudge["rule"])
        value = getattr(nudged.reward, "value", getattr(nudged.reward, "amount", None))
        from_tiers = isinstance(value, Tiers) and reports[nudged.id]["status"] != "not_eligible"
        seen.add("nudge:tiers" if from_tiers else "nudge:when")
    for line in quote["lines"]:
        if line["net"] == 0 and line["base"] > 0:
            seen.add("line:net-zero")
        if line["unit_price"] == 0:
            seen.add("line:price-zero")
    seen |= {"wallet:entry"} if quote["wallet"] else set()
    seen |= {"credit:entry"} if quote["credits"] else set()
    if not request["lines"]:
        seen.add("request:no-lines")
    if request.get("customer") is None:
        seen.add("request:no-customer")
    if request.get("prefer") == "instant":
        seen.add("request:prefer-instant")
    skus = [line["sku"] for line in request["lines"]]
    if len(set(skus)) < len(skus):
        seen.add("request:same-sku-twice")
    codes = ["".join(c for c in code if not c.isspace()).casefold()
             for code in request.get("coupons") or []]
    if len(set(codes)) < len(codes):
        seen.add("request:duplicate-code")
    return seen


def test_generator_covers_every_feature_of_the_spec(tmp_path: Path) -> None:
    counts: Counter[str] = Counter()
    for seed in COVERAGE_SEEDS:
        case = generate_case(seed)
        program, quote = quote_case(case, tmp_path)
        counts.update(observe(program, json.loads(case.request_json), quote))
    missing = sorted(REQUIRED - set(counts))
    assert missing == [], f"never exercised over {len(COVERAGE_SEEDS)} seeds: {missing}"


def test_the_coverage_check_can_fail(tmp_path: Path) -> None:
    """A program with one plain rule exercises almost nothing: `observe` must say so."""
    case = Case(
        "program: tiny\ncurrency: EUR\ntimezone: UTC\nrules:\n  - id: a\n    discount: 10%\n",
        '{"items": [{"sku": "A", "price": "1.00", "category": "c"}]}',
        '{"lines": [{"sku": "A", "qty": 1}], "at": "2026-07-04T10:00:00Z"}',
        0,
    )
    program, quote = quote_case(case, tmp_path)
    seen = observe(program, json.loads(case.request_json), quote)
    assert {"status:applied", "reward:discount:percent", "places:2"} <= seen
    assert "status:capped" not in seen and "lane:instant" not in seen
