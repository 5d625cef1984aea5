"""Properties every quote of the reference evaluator must have (spec 4 and 7), checked on
generated programs, and the exact arithmetic of 4.2-4.5 checked against `fractions.Fraction`.

Hypothesis draws the seeds of `wasm_build.random_program` (so the quotes cover the whole
language) and, where a property is about one mechanism, draws small inputs directly. The
profile is derandomized and has no example database, so CI sees the same examples each run.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poprules import api
from poprules.request import Request
from wasm_build.lang.model import (
    Cashback,
    Credit,
    Keyed,
    Lane,
    Points,
    Program,
    Rounding,
    Rule,
    Schedule,
    Tiers,
)
from wasm_build.random_program import Case, generate_case
from wasm_build.reference.arithmetic import allocate, round_ratio

PROFILE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow])
COMPUTED = ("applied", "capped")
STATUSES = ("applied", "capped", "not_eligible", "no_items", "superseded", "inactive",
            "coupon_required")
LINE_FIGURES = ("unit_price", "base", "discount", "net", "cashback_instant", "cashback_wallet",
                "points")
TOTALS = ("subtotal", "discount", "net", "cashback_instant", "payable", "cashback_wallet",
          "points")


# --- running a case -------------------------------------------------------------------------


def run(case: Case) -> tuple[Program, Request, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as directory:
        program_path, catalog_path, request_path = case.write(Path(directory))
        program = api.load(program_path, catalog_path)
        request = api.read_request(program, request_path)
        return program, request, api.quote(program, request_path)


def utc(seconds: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def normal(code: str) -> str:
    return "".join(ch for ch in code if not ch.isspace()).casefold()


def evaluation_order(program: Program) -> list[Rule]:
    """Spec 4.1: phase 1 then phase 2, priority descending, then file order."""
    return sorted(program.rules, key=lambda r: (r.reward.phase, -r.priority, r.index))


def settled_lane(rule: Rule, request: Request) -> Lane | None:
    if not isinstance(rule.reward, Cashback):
        return None
    if rule.reward.lane is Lane.CHOICE:
        return Lane.INSTANT if request.prefer == "instant" else Lane.WALLET
    return rule.reward.lane


# --- the invariants of one quote ------------------------------------------------------------


def check_quote(program: Program, request: Request, quote: dict[str, Any]) -> None:
    order = evaluation_order(program)
    reports = {r["rule"]: r for r in quote["rules"]}
    check_rules(order, quote["rules"])
    check_schedules_and_failures(program, request, reports)
    check_lines(program, request, quote)
    check_rule_amounts(order, request, reports, quote["totals"])
    check_wallet_and_credits(order, request, reports, quote)
    check_nudges(order, quote["nudges"], reports)
    check_coupons(program, order, request, reports, quote["coupons"])


def check_rules(order: list[Rule], rules: list[dict[str, Any]]) -> None:
    """rules[] lists every rule once, in evaluation order, with exactly the keys of its
    status; a capped rule lost something to its cap."""
    assert [r["rule"] for r in rules] == [r.id for r in order]
    for report in rules:
        status = report["status"]
        assert status in STATUSES
        keys = {"applied": {"amount"}, "capped": {"amount", "uncapped"},
                "not_eligible": {"failed", "value"}}.get(status, set())
        assert set(report) - {"rule", "status"} == keys, report
        if status in COMPUTED:
            assert type(report["amount"]) is int and report["amount"] >= 0
        if status == "capped":
            assert report["amount"] < report["uncapped"], report
        if status == "not_eligible":
            assert isinstance(report["failed"], str) and report["failed"]


def check_lines(program: Program, request: Request, quote: dict[str, Any]) -> None:
    lines, totals = quote["lines"], quote["totals"]
    assert len(lines) == len(request.lines)
    for line, asked in zip(lines, request.lines):
        item = program.catalog.by_sku[asked.sku]
        assert (line["sku"], line["qty"]) == (asked.sku, asked.qty)
        assert line["unit_price"] == item.price
        assert line["base"] == item.price * asked.qty
        for key in LINE_FIGURES:
            assert type(line[key]) is int and line[key] >= 0, (key, line)
        assert line["discount"] == line["base"] - line["net"]
        assert line["cashback_instant"] <= line["net"]
    assert set(totals) == set(TOTALS)
    for key in TOTALS:
        assert type(totals[key]) is int and totals[key] >= 0, (key, totals)
    assert totals["subtotal"] == sum(line["base"] for line in lines)
    for key in ("discount", "net", "cashback_instant", "cashback_wallet", "points"):
        assert totals[key] == sum(line[key] for line in lines), key
    assert totals["payable"] == totals["net"] - totals["cashback_instant"]


def check_rule_amounts(order: list[Rule], request: Request, reports: dict[str, Any],
                       totals: dict[str, int]) -> None:
    """Each rule's amount is exactly what it put into the lines: the amounts of a kind add
    up to its total."""

    def amounts(kind: Callable[[Rule], bool]) -> int:
        return sum(reports[r.id]["amount"] for r in order
                   if reports[r.id]["status"] in COMPUTED and kind(r))

    assert amounts(lambda r: r.reward.phase == 1) == totals["discount"]
    assert amounts(lambda r: isinstance(r.reward, Points)) == totals["points"]
    assert amounts(lambda r: settled_lane(r, request) is Lane.INSTANT) == (
        totals["cashback_instant"])
    assert amounts(lambda r: settled_lane(r, request) is Lane.WALLET and not (
        isinstance(r.reward, Cashback) and r.reward.to_referrer)) == totals["cashback_wallet"]
    referred = request.customer is not None and request.customer.referred
    for rule in order:
        if isinstance(rule.reward, Cashback) and rule.reward.to_referrer and not referred:
            assert reports[rule.id]["status"] in ("inactive", "coupon_required", "not_eligible")


def placed(order: list[Rule]) -> list[Rule]:
    """Evaluation order with every best_of member moved to its group's place (spec 8)."""
    first: dict[str, int] = {}
    for position, rule in enumerate(order):
        if rule.group is not None:
            first.setdefault(rule.group, position)
    return sorted(order, key=lambda r: (first.get(r.group or "", order.index(r)),
                                        order.index(r)))


def check_wallet_and_credits(order: list[Rule], request: Request, reports: dict[str, Any],
                             quote: dict[str, Any]) -> None:
    at = request.at
    wallet_rules = [r for r in placed(order) if reports[r.id]["status"] in COMPUTED
                    and settled_lane(r, request) is Lane.WALLET and reports[r.id]["amount"]]
    assert [w["rule"] for w in quote["wallet"]] == [r.id for r in wallet_rules]
    for entry, rule in zip(quote["wallet"], wallet_rules):
        reward = rule.reward
        assert isinstance(reward, Cashback)
        assert entry["amount"] == reports[rule.id]["amount"]
        assert entry["to"] == ("referrer" if reward.to_referrer else "customer")
        assert entry["vests_at"] == utc(at + reward.vest)
        lapses = None if reward.expires is None else utc(at + reward.vest + reward.expires)
        assert entry["lapses_at"] == lapses
    assert sum(w["amount"] for w in quote["wallet"] if w["to"] == "customer") == (
        quote["totals"]["cashback_wallet"])
    credit_rules = [r for r in placed(order) if isinstance(r.reward, Credit)
                    and reports[r.id]["status"] in COMPUTED and reports[r.id]["amount"]]
    assert [c["rule"] for c in quote["credits"]] == [r.id for r in credit_rules]
    for entry, rule in zip(quote["credits"], credit_rules):
        reward = rule.reward
        assert isinstance(reward, Credit)
        assert entry["amount"] == reports[rule.id]["amount"]
        assert entry["toward"] == reward.toward.text
        assert entry["lapses_at"] == (None if reward.expires is None
                                      else utc(at + reward.expires))


_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.\d+)?)?"
                   r"(Z|[+-]\d\d:\d\d)?")


def instant(text: str, zone: ZoneInfo) -> int:
    """Spec 2 read with zoneinfo: a fraction is dropped; without an offset the time is local,
    a time in a spring-forward gap takes the offset before the change and an ambiguous one
    its first occurrence (PEP 495's fold=0 does both)."""
    m = _TIME.fullmatch(text)
    assert m is not None, text
    year, month, day, hour, minute = (int(g) for g in m.groups()[:5])
    wall = datetime(year, month, day, hour, minute, int(m.group(6) or 0))
    offset = m.group(7)
    if offset is None:
        delta = wall.replace(tzinfo=zone, fold=0).utcoffset()
        assert delta is not None
    elif offset == "Z":
        delta = timedelta(0)
    else:
        sign = -1 if offset[0] == "-" else 1
        delta = sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return int((wall - delta - datetime(1970, 1, 1)).total_seconds())


def schedule_holds(schedule: Schedule, at: int, zone: ZoneInfo) -> bool:
    """Spec 3: every given part holds; days and hours read the local wall clock, and a window
    that wraps midnight belongs to the day on which it starts."""
    if schedule.start is not None and at < schedule.start:
        return False
    if schedule.until is not None and at >= schedule.until:
        return False
    local = datetime.fromtimestamp(at, zone)
    now = local.hour * 3600 + local.minute * 60 + local.second
    today, yesterday = local.weekday(), (local - timedelta(days=1)).weekday()
    days = schedule.days if schedule.days is not None else frozenset(range(7))
    if schedule.hours is None:
        return today in days
    start, end = schedule.hours
    if start < end:
        return start <= now < end and today in days
    return (now >= start and today in days) or (now < end and yesterday in days)


def check_schedules_and_failures(program: Program, request: Request,
                                 reports: dict[str, Any]) -> None:
    zone = ZoneInfo(program.timezone)
    for rule in program.rules:
        report = reports[rule.id]
        if rule.active is not None:
            active = schedule_holds(rule.active, request.at, zone)
            assert (report["status"] == "inactive") == (not active), rule.id
        if report["status"] != "not_eligible":
            continue
        spec = getattr(rule.reward, "value", getattr(rule.reward, "amount", None))
        failed = report["failed"]
        if rule.when is not None and failed in rule.when.text:
            continue
        if isinstance(spec, Keyed) and failed == spec.by.text:
            continue
        if isinstance(spec, Tiers) and failed.startswith(f"{spec.basis.text} >= "):
            continue
        assert failed == "customer.referred" and report["value"] is False, report


def check_nudges(order: list[Rule], nudges: list[dict[str, Any]],
                 reports: dict[str, Any]) -> None:
    rank = {rule.id: i for i, rule in enumerate(order)}
    keys = [(n["missing"], rank[n["rule"]]) for n in nudges]
    assert keys == sorted(keys), "nudges are sorted by missing, ties in rules[] order"
    assert len({n["rule"] for n in nudges}) == len(nudges), "at most one nudge per rule"
    by_id = {rule.id: rule for rule in order}
    for nudge in nudges:
        assert type(nudge["missing"]) is int and nudge["missing"] > 0, nudge
        assert nudge["gives"].startswith(by_id[nudge["rule"]].reward.key + " ")
        assert reports[nudge["rule"]]["status"] not in ("inactive", "coupon_required")


def check_coupons(program: Program, order: list[Rule], request: Request,
                  reports: dict[str, Any], coupons: list[dict[str, Any]]) -> None:
    """Spec 6: every code once, in request order, with the first status that applies."""
    firsts: dict[str, str] = {}
    for code in request.coupons:
        firsts.setdefault(normal(code), code)
    assert [c["code"] for c in coupons] == list(firsts.values())
    owner = {code: s for s in program.coupons for code in s.codes}
    spent = {normal(code) for code in request.spent_coupons}
    usable: set[str] = set()
    for report in coupons:
        code = normal(report["code"])
        coupon_set = owner.get(code) if code else None
        expected: dict[str, Any]
        if coupon_set is None:
            expected = {"status": "unknown"}
        elif coupon_set.expires is not None and request.at >= coupon_set.expires:
            expected = {"status": "expired"}
        elif code in spent:
            expected = {"status": "spent"}
        else:
            usable.add(coupon_set.id)
            needing = [r for r in order if r.coupon == coupon_set.id]
            if any(reports[r.id]["status"] in COMPUTED for r in needing):
                expected = {"status": "valid"}
            elif needing:
                expected = {"status": "not_applicable", "rule": needing[0].id,
                            "reason": reports[needing[0].id]["status"]}
            else:
                expected = {"status": "not_applicable", "rule": None, "reason": "unused"}
        assert report == {"code": report["code"], **expected}
    for rule in order:
        status = reports[rule.id]["status"]
        if rule.coupon is not None and status != "inactive":
            assert (status == "coupon_required") == (rule.coupon not in usable), rule.id


@settings(PROFILE, max_examples=250)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1),
       rules=st.none() | st.integers(min_value=0, max_value=14))
def test_every_generated_quote_keeps_the_invariants(seed: int, rules: int | None) -> None:
    case = generate_case(seed, rules=rules)
    program, request, quote = run(case)
    check_quote(program, request, quote)
    at = json.loads(case.request_json)["at"]
    assert request.at == instant(at, ZoneInfo(program.timezone)), at


@settings(PROFILE, max_examples=40)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_a_quote_is_a_function_of_its_inputs(seed: int) -> None:
    case = generate_case(seed)
    assert run(case)[2] == run(case)[2]


# --- exact arithmetic (spec 4.2, 4.3) ---------------------------------------------------------

MODES = st.sampled_from(list(Rounding))


def rounded(value: Fraction, mode: Rounding) -> int:
    if mode is Rounding.DOWN:
        return math.floor(value)
    if mode is Rounding.HALF_UP:
        return math.floor(value + Fraction(1, 2))
    return round(value)  # Fraction rounds half to even


@settings(PROFILE, max_examples=400)
@given(numerator=st.integers(min_value=0, max_value=10**24),
       denominator=st.integers(min_value=1, max_value=10**12), mode=MODES)
def test_round_ratio_matches_fraction_rounding(numerator: int, denominator: int,
                                               mode: Rounding) -> None:
    assert round_ratio(numerator, denominator, mode) == rounded(
        Fraction(numerator, denominator), mode)


@settings(PROFILE, max_examples=200)
@given(half=st.integers(min_value=0, max_value=10**9), mode=MODES)
def test_round_ratio_ties(half: int, mode: Rounding) -> None:
    """x.5 exactly: half_even to the even neighbour, half_up up, down to the floor."""
    expected = {Rounding.DOWN: half, Rounding.HALF_UP: half + 1,
                Rounding.HALF_EVEN: half + (half % 2)}[mode]
    assert round_ratio(2 * half + 1, 2, mode) == expected


def largest_remainder(total: int, weights: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Spec 4.3 with exact fractions: floors, then one unit each to the largest remainders,
    ties to the lower line index."""
    weight_sum = sum(w for _, w in weights)
    quotas = {i: Fraction(total * w, weight_sum) for i, w in weights}
    shares = {i: math.floor(q) for i, q in quotas.items()}
    left = total - sum(shares.values())
    for i in sorted(quotas, key=lambda i: (-(quotas[i] - shares[i]), i))[:left]:
        shares[i] += 1
    return shares


WEIGHTS = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12).filter(
    lambda ws: sum(ws) > 0)


@settings(PROFILE, max_examples=400)
@given(weights=WEIGHTS, total=st.integers(min_value=0, max_value=10**10),
       order=st.randoms(use_true_random=False))
def test_allocate_is_exact(weights: list[int], total: int, order: Any) -> None:
    pairs = [(3 * i + 1, w) for i, w in enumerate(weights)]  # any line indices, any order
    order.shuffle(pairs)
    shares = allocate(total, pairs)
    assert shares == largest_remainder(total, pairs)
    assert set(shares) == {i for i, _ in pairs}
    assert sum(shares.values()) == total
    weight_sum = sum(weights)
    for i, w in pairs:
        quota = Fraction(total * w, weight_sum)
        assert shares[i] in (math.floor(quota), math.floor(quota) + 1)
        if total <= weight_sum:
            assert shares[i] <= w
    assert allocate(total, pairs) == shares  # the same total over the same weights


@settings(PROFILE, max_examples=200)
@given(weight=st.integers(min_value=1, max_value=10**6), count=st.integers(2, 9),
       total=st.integers(min_value=0, max_value=40))
def test_allocation_ties_go_to_the_lower_index(weight: int, count: int, total: int) -> None:
    shares = allocate(total, [(i, weight) for i in reversed(range(count))])
    base, extra = divmod(total, count)
    assert shares == {i: base + (1 if i < extra else 0) for i in range(count)}


# --- one mechanism at a time: per-line figures of a quote -------------------------------------

CURRENCIES = {"JPY": 0, "EUR": 2, "BHD": 3, "CLF": 4}


def money(minor: int, places: int) -> str:
    whole, frac = divmod(minor, 10**places)
    return f"{whole}.{frac:0{places}d}" if places else str(whole)


def single_rule_case(currency: str, prices: list[int], lines: list[tuple[int, int]],
                     rules: str, *, rounding: str = "half_even", prefer: str = "wallet") -> Case:
    places = CURRENCIES[currency]
    program = (f"program: prop\ncurrency: {currency}\ntimezone: UTC\nrounding: {rounding}\n"
               f"rules:\n{rules}")
    catalog = {"items": [{"sku": f"S{i}", "price": money(p, places), "category": "c"}
                         for i, p in enumerate(prices)]}
    request = {"lines": [{"sku": f"S{i}", "qty": q} for i, q in lines], "prefer": prefer,
               "at": "2026-07-04T10:00:00Z"}
    return Case(program, json.dumps(catalog), json.dumps(request), 0)


@st.composite
def carts(draw: st.DrawFn) -> tuple[str, list[int], list[tuple[int, int]]]:
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    prices = draw(st.lists(st.sampled_from([0, 1, 3, 5, 50, 99, 100, 333, 1990, 10**6])
                           | st.integers(0, 10**5), min_size=1, max_size=5))
    lines = draw(st.lists(st.tuples(st.integers(0, len(prices) - 1), st.integers(1, 12)),
                          min_size=1, max_size=8))
    return currency, prices, lines


FIXED = {"discount": "discount", "wallet": "cashback_wallet", "instant": "cashback_instant"}


@settings(PROFILE, max_examples=150)
@given(cart=carts(), amount=st.integers(0, 10**6), kind=st.sampled_from(sorted(FIXED)))
def test_a_fixed_amount_is_allocated_exactly_over_the_lines(
    cart: tuple[str, list[int], list[tuple[int, int]]], amount: int, kind: str
) -> None:
    """What a refund relies on (4.3): each line's share of a fixed amount follows from the
    quote alone, and the shares add up to the rule's amount."""
    currency, prices, lines = cart
    places = CURRENCIES[currency]
    key = "discount" if kind == "discount" else "cashback"
    lane = "" if kind == "discount" else f"    lane: {kind}\n"
    rules = f"  - id: fixed\n    {key}: {money(amount, places)}\n{lane}"
    _, _, quote = run(single_rule_case(currency, prices, lines, rules))
    nets = [(i, prices[sku] * qty) for i, (sku, qty) in enumerate(lines)]
    report = quote["rules"][0]
    if sum(n for _, n in nets) == 0:
        assert report == {"rule": "fixed", "status": "no_items"}
        return
    expected = largest_remainder(min(amount, sum(n for _, n in nets)), nets)
    figures = [line[FIXED[kind]] for line in quote["lines"]]
    assert figures == [expected[i] for i in range(len(lines))]
    assert report == {"rule": "fixed", "status": "applied", "amount": sum(figures)}
    assert allocate(report["amount"], nets) == dict(enumerate(figures))


@settings(PROFILE, max_examples=100)
@given(cart=carts(), every=st.integers(1, 10**4), award=st.integers(1, 5),
       cap=st.none() | st.integers(0, 50))
def test_points_are_allocated_by_net(cart: tuple[str, list[int], list[tuple[int, int]]],
                                     every: int, award: int, cap: int | None) -> None:
    currency, prices, lines = cart
    places = CURRENCIES[currency]
    capped = "" if cap is None else f"    cap: {{order: {cap}}}\n"
    rules = (f"  - id: pts\n    points: {{every: {money(every, places)}, award: {award}}}\n"
             f"{capped}")
    _, _, quote = run(single_rule_case(currency, prices, lines, rules))
    nets = [(i, prices[sku] * qty) for i, (sku, qty) in enumerate(lines)]
    if sum(n for _, n in nets) == 0:
        return
    total = sum(n for _, n in nets) // every * award
    expected = largest_remainder(total, nets)
    if cap is not None and total > cap:
        cuts = largest_remainder(total - cap, list(expected.items()))
        expected = {i: v - cuts[i] for i, v in expected.items()}
    assert [line["points"] for line in quote["lines"]] == [expected[i] for i in range(len(lines))]
    assert quote["totals"]["points"] == min(total, total if cap is None else cap)


@settings(PROFILE, max_examples=150)
@given(cart=carts(), ppm=st.sampled_from([1, 5_000, 100_000, 125_000, 333_333, 500_000,
                                          1_000_000]) | st.integers(0, 10**6),
       mode=MODES, line_cap=st.none() | st.integers(0, 500),
       order_cap=st.none() | st.integers(0, 2_000), lane=st.sampled_from(["instant", "wallet"]))
def test_percent_figures_go_through_the_clamps_and_caps_in_order(
    cart: tuple[str, list[int], list[tuple[int, int]]], ppm: int, mode: Rounding,
    line_cap: int | None, order_cap: int | None, lane: str
) -> None:
    """4.2 and 4.5: round each line, clamp by cap.line, spread the order cap's cut in
    proportion to the figures; `capped` with `uncapped` only when a cap cut something."""
    currency, prices, lines = cart
    places = CURRENCIES[currency]
    whole, frac = divmod(ppm, 10_000)
    caps = {k: money(v, places) for k, v in (("line", line_cap), ("order", order_cap))
            if v is not None}
    cap_text = ("    cap: {" + ", ".join(f"{k}: {v}" for k, v in caps.items()) + "}\n"
                if caps else "")
    rules = (f"  - id: pct\n    cashback: {whole}.{frac:04d}%\n    lane: {lane}\n{cap_text}")
    _, _, quote = run(single_rule_case(currency, prices, lines, rules, rounding=mode.value))
    nets = [prices[sku] * qty for sku, qty in lines]
    if sum(nets) == 0:
        return
    raw = {i: rounded(Fraction(n * ppm, 1_000_000), mode) for i, n in enumerate(nets)}
    figures = {i: v if line_cap is None else min(v, line_cap) for i, v in raw.items()}
    total = sum(figures.values())
    if order_cap is not None and total > order_cap:
        cuts = largest_remainder(total - order_cap, list(figures.items()))
        figures = {i: v - cuts[i] for i, v in figures.items()}
    field = f"cashback_{lane}"
    assert [line[field] for line in quote["lines"]] == [figures[i] for i in range(len(lines))]
    report = quote["rules"][0]
    if sum(figures.values()) < sum(raw.values()):
        assert report == {"rule": "pct", "status": "capped", "amount": sum(figures.values()),
                          "uncapped": sum(raw.values())}
    else:
        assert report == {"rule": "pct", "status": "applied", "amount": sum(raw.values())}


def free_units(buy: int, get: int, nets: list[tuple[int, int]]) -> dict[int, int]:
    """4.4 unit by unit: remainders on a line's first units, the n cheapest free, ties to the
    later line."""
    units: list[tuple[int, int]] = []
    for index, (net, qty) in enumerate(nets):
        low, extra = divmod(net, qty)
        units += [(low + 1 if u < extra else low, index) for u in range(qty)]
    free = len(units) // (buy + get) * get
    figures = dict.fromkeys(range(len(nets)), 0)
    for unit_net, index in sorted(units, key=lambda u: (u[0], -u[1]))[:free]:
        figures[index] += unit_net
    return figures


@settings(PROFILE, max_examples=120)
@given(cart=carts(), buy=st.integers(1, 3), get=st.integers(1, 2),
       ppm=st.sampled_from([0, 100_000, 333_333, 500_000]))
def test_free_items_take_the_cheapest_units_after_earlier_discounts(
    cart: tuple[str, list[int], list[tuple[int, int]]], buy: int, get: int, ppm: int
) -> None:
    currency, prices, lines = cart
    whole, frac = divmod(ppm, 10_000)
    rules = (f"  - id: pct\n    priority: 1\n    discount: {whole}.{frac:04d}%\n"
             f"  - id: free\n    free_items: {{buy: {buy}, get: {get}}}\n")
    _, _, quote = run(single_rule_case(currency, prices, lines, rules))
    bases = [prices[sku] * qty for sku, qty in lines]
    first = [round(Fraction(b * ppm, 1_000_000)) for b in bases]
    if sum(bases) == 0:
        return
    nets = [(b - d, qty) for b, d, (_, qty) in zip(bases, first, lines)]
    free = free_units(buy, get, nets)
    assert [line["discount"] for line in quote["lines"]] == [
        first[i] + free[i] for i in range(len(lines))]
    if sum(n for n, _ in nets):
        assert quote["rules"][1] == {"rule": "free", "status": "applied",
                                     "amount": sum(free.values())}


@settings(PROFILE, max_examples=60)
@given(cart=carts(), amounts=st.lists(st.integers(0, 5_000), min_size=2, max_size=3),
       kind=st.sampled_from(["cashback", "points"]))
def test_best_of_pays_only_the_largest_member(
    cart: tuple[str, list[int], list[tuple[int, int]]], amounts: list[int], kind: str
) -> None:
    currency, prices, lines = cart
    places = CURRENCIES[currency]
    def value(a: int) -> str:
        return money(a, places) if kind == "cashback" else (
            f"{{every: {money(a + 1, places)}, award: 1}}")

    rules = "".join(f"  - id: m{i}\n    {kind}: {value(a)}\n    stacking: best_of:g\n"
                    for i, a in enumerate(amounts))
    program, request, quote = run(single_rule_case(currency, prices, lines, rules))
    check_quote(program, request, quote)
    net = sum(prices[s] * q for s, q in lines)
    if net == 0:
        assert {r["status"] for r in quote["rules"]} == {"no_items"}
        return
    alone = [min(a, net) if kind == "cashback" else net // (a + 1) for a in amounts]
    winner = alone.index(max(alone))  # ties: the first in evaluation order
    assert quote["rules"] == [
        {"rule": f"m{i}", "status": "applied", "amount": alone[i]} if i == winner
        else {"rule": f"m{i}", "status": "superseded"} for i in range(len(amounts))]
    total = "points" if kind == "points" else "cashback_wallet"
    assert quote["totals"][total] == alone[winner]


def test_check_quote_rejects_a_broken_total() -> None:
    """The invariants are not vacuous: a quote with one figure off fails them."""
    program, request, quote = run(generate_case(5, rules=4))
    check_quote(program, request, quote)
    quote["totals"]["payable"] += 1
    try:
        check_quote(program, request, quote)
    except AssertionError:
        return
    raise AssertionError("check_quote accepted a payable that is not net - cashback_instant")
