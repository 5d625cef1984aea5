"""Program loader and checker: a program file and its catalog → the checked `Program`.

The checks run in the order of spec 9.3 and stop at the first problem: the program's own
keys, then the catalog, then each coupon set, each rule, and the best_of groups. Each error
names its `field` (and `rule`, `text`, `column` where they apply) exactly as the spec lists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, available_timezones

from poprules.codes import normalize_code
from poprules.currency import DECIMALS
from poprules.errors import InputError, Where
from poprules.jsonio import decode_text
from wasm_build.lang import fields as f
from wasm_build.lang.ast import Const, Name, Type
from wasm_build.lang.catalog import load_catalog
from wasm_build.lang.model import (
    Amount,
    Cap,
    Cashback,
    Catalog,
    CouponSet,
    Credit,
    Discount,
    Expression,
    FreeItems,
    Generate,
    Keyed,
    Lane,
    Percent,
    PerUnit,
    Points,
    Program,
    Reward,
    Rounding,
    Rule,
    Schedule,
    Stacking,
    Step,
    Tiers,
    Value,
    ValueSpec,
)
from wasm_build.lang.source import Document, Flag, Map, Node, Seq, Text, read_program_text
from wasm_build.lang.syntax import ExprError, LiteralContext, parse
from wasm_build.lang.typecheck import Checker, Scope

PROGRAM_KEYS = ("program", "currency", "timezone", "rounding", "coupons", "rules")
COUPON_KEYS = ("id", "codes", "generate", "expires", "max_redemptions", "per_customer")
REWARD_KEYS = ("discount", "free_items", "cashback", "points", "credit")
RULE_KEYS = (
    "id", "title", "priority", "active", "when", "items", "coupon",
    *REWARD_KEYS,
    "lane", "vest", "expires", "to", "cap", "stacking",
)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PROGRAM_NAME = re.compile(r"[a-z0-9-]{1,64}")
_HOURS = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC", "Etc/UTC"})


def load_program(
    program_path: str | os.PathLike[str], catalog_path: str | os.PathLike[str]
) -> Program:
    """Read and check a program and its catalog; errors carry the file they are about."""
    program_path, catalog_path = Path(program_path), Path(catalog_path)
    try:
        raw = program_path.read_bytes()
    except OSError as exc:
        raise InputError("program", f"cannot read the program: {exc.strerror}").from_source(
            str(program_path)
        ) from None

    def catalog(currency: str) -> Catalog:
        try:
            return load_catalog(catalog_path, currency=currency)
        except InputError as exc:
            raise exc.from_source(str(catalog_path)) from None

    try:
        return parse_program(raw, json_syntax=program_path.suffix.lower() == ".json",
                             catalog=catalog)
    except InputError as exc:
        raise exc.from_source(str(program_path)) from None


def parse_program(
    raw: bytes, *, json_syntax: bool, catalog: Callable[[str], Catalog]
) -> Program:
    """Check a program's bytes; `catalog(currency)` loads the catalog at its turn (9.3)."""
    doc = read_program_text(decode_text(raw, "program"), json_syntax=json_syntax)
    if doc.repeated is not None:
        raise _repeated_key(doc)
    root = doc.root
    if not isinstance(root, Map):
        raise f.fail("program", "the program must be a mapping of keys such as program, "
                     "currency, timezone, rules", root)
    f.only_keys(root, PROGRAM_KEYS, "", "program")
    with f.within(root):
        name = _program_name(root.items.get("program"))
        currency = _currency(root.items.get("currency"))
        timezone = _timezone(root.items.get("timezone"))
        rounding = _rounding(root.items.get("rounding"))
    cat = catalog(currency)
    loader = _RuleLoader(currency, ZoneInfo(timezone), cat)
    coupons = loader.coupon_sets(root.items.get("coupons"))
    rules = loader.rules(root.items.get("rules"))
    return Program(name, currency, DECIMALS[currency], timezone, rounding, coupons, rules, cat)


def _repeated_key(doc: Document) -> InputError:
    assert doc.repeated is not None
    path, key, where = doc.repeated
    err = InputError(f"program.{key}", f"the key {key!r} is repeated", where=where)
    # A repeated key inside a rule names that rule when its id is valid.
    if len(path) >= 2 and path[0] == "rules" and isinstance(doc.root, Map):
        rules = doc.root.items.get("rules")
        index = path[1]
        if isinstance(rules, Seq) and isinstance(index, int) and index < len(rules.items):
            rule = rules.items[index]
            if isinstance(rule, Map):
                rid = rule.items.get("id")
                if isinstance(rid, Text) and f.ID.fullmatch(rid.text):
                    err.rule = rid.text
    return err


def _inside(node: Node, raw: str, column: int) -> Where | None:
    """The file position of a column of a condition: exact for a plain one-line scalar, the
    scalar's start otherwise (quotes, escapes and folding move characters around)."""
    line, start = node.where.line, node.where.column
    if not isinstance(node, Text) or node.quoted or "\n" in raw or start is None:
        return node.where
    return Where(line, start + len(raw) - len(raw.lstrip()) + column - 1)


def _program_name(node: Node | None) -> str:
    if node is None:
        raise InputError("program", "program (the program's name) is required")
    name = f.text(node, "program")
    if _PROGRAM_NAME.fullmatch(name) is None:
        raise f.fail("program", f"{name!r} must be 1-64 characters from a-z, 0-9 and -", node)
    return name


def _currency(node: Node | None) -> str:
    if node is None:
        raise InputError("currency", "currency (an ISO 4217 code such as EUR) is required")
    code = f.text(node, "currency")
    if code not in DECIMALS:
        raise f.fail("currency", f"{code!r} is not an active ISO 4217 currency with a minor "
                     "unit", node)
    return code


def _timezone(node: Node | None) -> str:
    if node is None:
        raise InputError("timezone", "timezone (an IANA name such as Europe/Lisbon) is required")
    name = f.text(node, "timezone")
    if name not in _zones():
        raise f.fail("timezone", f"{name!r} is not an IANA time zone name", node)
    return name


def _rounding(node: Node | None) -> Rounding:
    if node is None:
        return Rounding.HALF_EVEN
    value = f.text(node, "rounding")
    try:
        return Rounding(value)
    except ValueError:
        raise f.fail("rounding", f"rounding must be half_even, half_up or down, not {value!r}",
                     node) from None


class _RuleLoader:
    """Checks coupon sets and rules against one program's currency, zone and catalog."""

    def __init__(self, currency: str, zone: ZoneInfo, catalog: Catalog) -> None:
        self.places = DECIMALS[currency]
        self.zone = zone
        self.literals = LiteralContext(self.places, zone)
        self.checker = Checker(catalog.attributes, self.places)
        self.coupon_ids: set[str] = set()

    # --- coupons -----------------------------------------------------------------------

    def coupon_sets(self, node: Node | None) -> tuple[CouponSet, ...]:
        if node is None:
            return ()
        seq = f.sequence(node, "coupons")
        owner: dict[str, str] = {}
        sets: list[CouponSet] = []
        for i, item in enumerate(seq.items):
            m = f.mapping(item, f"coupons[{i}]")
            with f.within(m):
                sets.append(self.coupon_set(m, i, owner))
        return tuple(sets)

    def coupon_set(self, m: Map, i: int, owner: dict[str, str]) -> CouponSet:
        at = f"coupons[{i}]"
        f.only_keys(m, COUPON_KEYS, at)
        get = m.items.get
        if get("id") is None:
            raise f.fail(f"{at}.id", "a coupon set needs an id", m)
        cid = f.identifier(get("id"), f"{at}.id")
        if cid in self.coupon_ids:
            raise f.fail(f"{at}.id", f"the coupon set id {cid!r} is used twice", get("id"))
        codes = self.codes(get("codes"), f"{at}.codes", cid, owner)
        generate = self.generate(get("generate"), f"{at}.generate")
        expires = None if get("expires") is None else f.instant(
            get("expires"), f"{at}.expires", self.zone)
        max_redemptions = None if get("max_redemptions") is None else f.integer(
            get("max_redemptions"), f"{at}.max_redemptions", 1)
        per_customer = None if get("per_customer") is None else f.integer(
            get("per_customer"), f"{at}.per_customer", 1)
        if get("codes") is None and generate is None:
            raise f.fail(at, "a coupon set needs codes, generate or both", m)
        self.coupon_ids.add(cid)
        return CouponSet(cid, codes, generate, expires, max_redemptions, per_customer)

    @staticmethod
    def codes(node: Node | None, field: str, cid: str, owner: dict[str, str]) -> frozenset[str]:
        if node is None:
            return frozenset()
        seq = f.sequence(node, field)
        codes: set[str] = set()
        for item in seq.items:
            code = f.text(item, field, "a code (text)")
            normal = normalize_code(code)
            if not normal:
                raise f.fail(field, "a code cannot be empty or only whitespace", item)
            if owner.get(normal, cid) != cid:
                raise f.fail(field, f"the code {code!r} is also in coupon set {owner[normal]!r}",
                             item)
            owner[normal] = cid
            codes.add(normal)
        return frozenset(codes)

    @staticmethod
    def generate(node: Node | None, field: str) -> Generate | None:
        if node is None:
            return None
        m = f.mapping(node, field)
        f.only_keys(m, ("count", "prefix", "length"), field)
        with f.within(m):
            count = f.integer(m.items.get("count"), f"{field}.count", 1)
            prefix_node = m.items.get("prefix")
            prefix = "" if prefix_node is None else f.text(prefix_node, f"{field}.prefix")
            length = f.integer(m.items.get("length"), f"{field}.length", 1)
        return Generate(count, length, prefix)

    # --- rules -------------------------------------------------------------------------

    def rules(self, node: Node | None) -> tuple[Rule, ...]:
        if node is None:
            return ()
        seq = f.sequence(node, "rules")
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, item in enumerate(seq.items):
            m = f.mapping(item, f"rules[{i}]")
            if m.items.get("id") is None:
                raise f.fail(f"rules[{i}].id", "a rule needs an id", m)
            rid = f.identifier(m.items.get("id"), f"rules[{i}].id")
            try:
                with f.within(m):
                    rule = self.rule(m, i, rid)
                if rid in seen:
                    raise f.fail("id", f"the rule id {rid!r} is used twice", m.items["id"])
            except InputError as exc:
                raise exc.in_rule(rid) from None
            seen.add(rid)
            rules.append(rule)
        self.check_groups(rules, seq)
        return tuple(rules)

    @staticmethod
    def check_groups(rules: list[Rule], seq: Seq) -> None:
        groups: dict[str, list[Rule]] = {}
        for rule in rules:
            if rule.group is not None:
                groups.setdefault(rule.group, []).append(rule)
        for group, members in groups.items():
            last = members[-1]
            where = f.where(seq.items[last.index])
            if len({m.phase for m in members}) > 1:
                raise InputError("stacking", f"best_of group {group!r} mixes phase 1 rewards "
                                 "(discount, free_items) with phase 2 rewards", rule=last.id,
                                 where=where)
            if len({isinstance(m.reward, Points) for m in members}) > 1:
                raise InputError("stacking", f"best_of group {group!r} mixes points with money "
                                 "rewards", rule=last.id, where=where)

    def rule(self, m: Map, index: int, rid: str) -> Rule:
        f.only_keys(m, RULE_KEYS, "", f"rules[{index}]")
        get = m.items.get
        title = "" if get("title") is None else f.text(get("title"), "title")
        priority = 0 if get("priority") is None else f.integer(get("priority"), "priority")
        active = None if get("active") is None else self.schedule(get("active"))
        when = self.condition(get("when"), "when", Scope.ORDER)
        items = self.condition(get("items"), "items", Scope.ITEM)
        coupon = None
        if get("coupon") is not None:
            coupon = f.text(get("coupon"), "coupon")
            if coupon not in self.coupon_ids:
                raise f.fail("coupon", f"there is no coupon set {coupon!r}", get("coupon"))
        reward, cap_places = self.reward(m)
        cap = self.cap(get("cap"), reward, cap_places)
        stacking, group = self.stacking(get("stacking"))
        return Rule(rid, index, title, priority, active, when, items, coupon, reward, cap,
                    stacking, group)

    def condition(self, node: Node | None, field: str, scope: Scope,
                  expected: Type = Type.BOOL) -> Expression | None:
        if node is None:
            return None
        if isinstance(node, Flag):
            word = "true" if node.value else "false"
            if expected is not Type.BOOL:
                raise InputError(field, f"{field} must be a {expected.value} expression",
                                 text=word, column=1, where=node.where)
            return Expression(word, Const(0, len(word), Type.BOOL, node.value))
        raw = f.text(node, field, "an expression")
        source = raw.strip()
        try:
            tree = self.checker.check(parse(source, self.literals), scope, expected)
        except ExprError as exc:
            raise InputError(field, exc.message, text=source, column=exc.column,
                             where=_inside(node, raw, exc.column)) from None
        return Expression(source, tree)

    def schedule(self, node: Node | None) -> Schedule:
        m = f.mapping(node, "active")
        f.only_keys(m, ("from", "until", "days", "hours"), "active")
        get = m.items.get
        start = None if get("from") is None else f.instant(get("from"), "active.from", self.zone)
        until = None if get("until") is None else f.instant(get("until"), "active.until",
                                                             self.zone)
        if start is not None and until is not None and start >= until:
            raise f.fail("active.until", "until must be after from", get("until"))
        days = None if get("days") is None else self.days(get("days"))
        hours = None if get("hours") is None else self.hours(get("hours"))
        return Schedule(start, until, days, hours)

    @staticmethod
    def days(node: Node | None) -> frozenset[int]:
        seq = f.sequence(node, "active.days")
        if not seq.items:
            raise f.fail("active.days", "days must list at least one day", seq)
        out: set[int] = set()
        for item in seq.items:
            day = f.text(item, "active.days", "a day such as mon").lower()
            if day not in DAYS:
                raise f.fail("active.days", f"{day!r} is not one of {' '.join(DAYS)}", item)
            out.add(DAYS.index(day))
        return frozenset(out)

    @staticmethod
    def hours(node: Node | None) -> tuple[int, int]:
        value = f.text(node, "active.hours", 'a window such as "09:00-18:00"')
        m = _HOURS.fullmatch(value)
        if m is None:
            raise f.fail("active.hours", f'{value!r} is not a window such as "09:00-18:00"', node)
        sh, sm, eh, em = (int(g) for g in m.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
            raise f.fail("active.hours", f"{value!r} is not a valid window (00:00 to 24:00, "
                         "24:00 only as an end)", node)
        start, end = sh * 3600 + sm * 60, eh * 3600 + em * 60
        if start == end:
            raise f.fail("active.hours", f"{value!r} starts and ends at the same time", node)
        return start, end

    # --- rewards -----------------------------------------------------------------------

    def reward(self, m: Map) -> tuple[Reward, bool]:
        """The reward, then lane/vest/expires/to; returns it and whether caps are points."""
        present = [k for k in REWARD_KEYS if m.items.get(k) is not None]
        if len(present) != 1:
            found = ", ".join(present) if present else "none"
            raise f.fail("reward", "a rule needs exactly one reward key (discount, free_items, "
                         f"cashback, points or credit); found {found}", m)
        key = present[0]
        node = m.items[key]
        assert node is not None
        with f.within(node):
            reward = self.reward_body(key, node)
        return self.reward_options(m, reward), isinstance(reward, Points)

    def reward_body(self, key: str, node: Node) -> Reward:
        reward: Reward
        if key == "discount":
            reward = Discount(self.value_spec(node, "discount"))
        elif key == "cashback":
            reward = Cashback(self.value_spec(node, "cashback"))
        elif key == "free_items":
            body = f.mapping(node, "free_items")
            f.only_keys(body, ("buy", "get"), "free_items")
            reward = FreeItems(f.integer(body.items.get("buy"), "free_items.buy", 1),
                               f.integer(body.items.get("get"), "free_items.get", 1))
        elif key == "points":
            body = f.mapping(node, "points")
            f.only_keys(body, ("every", "award"), "points")
            every = f.amount(body.items.get("every"), "points.every", self.places)
            if every == 0:
                raise f.fail("points.every", "every must be more than 0", body.items["every"])
            reward = Points(every, f.integer(body.items.get("award"), "points.award", 1))
        else:
            body = f.mapping(node, "credit")
            f.only_keys(body, ("amount", "toward"), "credit")
            if body.items.get("amount") is None:
                raise f.fail("credit.amount", "a credit needs an amount", body)
            amount = self.value_spec(body.items["amount"], "credit.amount", credit=True)
            if body.items.get("toward") is None:
                raise f.fail("credit.toward", "a credit needs toward: the lines it can be "
                             "spent on", body)
            toward = self.condition(body.items["toward"], "credit.toward", Scope.ITEM)
            assert toward is not None
            reward = Credit(amount, toward)
        return reward

    def reward_options(self, m: Map, reward: Reward) -> Reward:
        get = m.items.get
        if get("lane") is not None and not isinstance(reward, Cashback):
            raise f.fail("lane", "lane is only for cashback", get("lane"))
        if isinstance(reward, Cashback) and get("lane") is not None:
            value = f.text(get("lane"), "lane")
            try:
                reward = Cashback(reward.value, Lane(value))
            except ValueError:
                raise f.fail("lane", f"lane must be instant, wallet or choice, not {value!r}",
                             get("lane")) from None
        walletish = isinstance(reward, Cashback) and reward.lane is not Lane.INSTANT
        if get("vest") is not None:
            if not walletish:
                raise f.fail("vest", "vest is only for cashback in lane wallet or choice",
                             get("vest"))
            assert isinstance(reward, Cashback)
            reward = Cashback(reward.value, reward.lane, f.duration(get("vest"), "vest"))
        if get("expires") is not None:
            if not (walletish or isinstance(reward, Credit)):
                raise f.fail("expires", "expires is only for cashback in lane wallet or choice, "
                             "and for credit", get("expires"))
            expires = f.duration(get("expires"), "expires")
            if isinstance(reward, Credit):
                reward = Credit(reward.amount, reward.toward, expires)
            else:
                assert isinstance(reward, Cashback)
                reward = Cashback(reward.value, reward.lane, reward.vest, expires)
        if get("to") is not None:
            to = f.text(get("to"), "to")
            if to not in ("customer", "referrer"):
                raise f.fail("to", f"to must be customer or referrer, not {to!r}", get("to"))
            if to == "referrer":
                if not (isinstance(reward, Cashback) and reward.lane is Lane.WALLET):
                    raise f.fail("to", "to: referrer is only for cashback in lane wallet",
                                 get("to"))
                reward = Cashback(reward.value, reward.lane, reward.vest, reward.expires, True)
        return reward

    def value_spec(self, node: Node | None, field: str, *, credit: bool = False) -> ValueSpec:
        """A reward value, possibly tiered or keyed (spec 4)."""
        if isinstance(node, Map):
            keys = set(node.items)
            if keys == {"tiers"}:
                return self.tiers(node.items["tiers"], field, credit)
            if keys == {"by", "values"}:
                return self.keyed(node, field, credit)
        return self.value(node, field, credit)

    def value(self, node: Node | None, field: str, credit: bool) -> Value:
        if credit:
            return Amount(f.amount(node, field, self.places))
        if isinstance(node, Map):
            if set(node.items) != {"per_unit"}:
                raise f.fail(field, f"{field} must be a percent, an amount, {{per_unit: X}}, "
                             "tiers or by/values", node)
            return PerUnit(f.amount(node.items["per_unit"], field, self.places))
        if isinstance(node, Text) and node.text.strip().endswith("%"):
            return Percent(f.percent(node, field))
        if not isinstance(node, Text):
            raise f.fail(field, f"{field} must be a percent such as 10%, an amount such as "
                         f"5.00, or {{per_unit: X}}, not {f.describe(node)}", node)
        return Amount(f.amount(node, field, self.places))

    def tiers(self, node: Node | None, field: str, credit: bool) -> Tiers:
        body = f.mapping(node, field)
        for key in body.items:
            if key not in ("basis", "steps"):
                raise f.fail(field, "tiers takes basis and steps only", body.keys[key])
        basis_node = body.items.get("basis")
        if basis_node is None:
            basis = Expression("order.subtotal", Name(0, 14, "order.subtotal", Type.MONEY))
        else:
            checked = self.condition(basis_node, f"{field}.basis", Scope.ORDER, Type.MONEY)
            assert checked is not None
            basis = checked
        steps_node = body.items.get("steps")
        seq = f.sequence(steps_node, field)
        if not seq.items:
            raise f.fail(field, "tiers need at least one step", seq)
        steps: list[Step] = []
        for item in seq.items:
            step = f.mapping(item, field)
            if set(step.items) != {"min", "value"}:
                raise f.fail(field, "each step is {min: amount, value: ...}", step)
            with f.within(step):
                minimum = f.amount(step.items["min"], field, self.places)
                if any(s.min == minimum for s in steps):
                    raise f.fail(field, "two steps have the same min", step)
                steps.append(Step(minimum, self.value(step.items["value"], field, credit)))
        return Tiers(basis, tuple(sorted(steps, key=lambda s: s.min)))

    def keyed(self, node: Map, field: str, credit: bool) -> Keyed:
        by = self.condition(node.items["by"], f"{field}.by", Scope.ORDER, Type.STRING)
        if by is None:
            raise f.fail(f"{field}.by", "by needs a string expression such as customer.tier",
                         node)
        body = f.mapping(node.items["values"], field)
        values: dict[str, Value] = {}
        for key, value in body.items.items():
            if isinstance(body.keys[key], Flag):
                raise f.fail(field, f"values keys are text; quote {key!r}", body.keys[key])
            values[key] = self.value(value, field, credit)
        return Keyed(by, MappingProxyType(values))

    def cap(self, node: Node | None, reward: Reward, points: bool) -> Cap:
        if node is None:
            return Cap()
        m = f.mapping(node, "cap")
        f.only_keys(m, ("line", "order"), "cap")

        def limit(key: str) -> int | None:
            value = m.items.get(key)
            if value is None:
                return None
            if points:
                return f.integer(value, f"cap.{key}", 0)
            return f.amount(value, f"cap.{key}", self.places)

        line = limit("line")
        if line is not None and isinstance(reward, Credit):
            raise f.fail("cap.line", "a credit has no lines: use cap.order", m.items["line"])
        return Cap(line, limit("order"))

    @staticmethod
    def stacking(node: Node | None) -> tuple[Stacking, str | None]:
        if node is None:
            return Stacking.STACK, None
        value = f.text(node, "stacking")
        if value in ("stack", "exclusive"):
            return Stacking(value), None
        if value.startswith("best_of:"):
            group = value.removeprefix("best_of:")
            if f.ID.fullmatch(group):
                return Stacking.BEST_OF, group
        raise f.fail("stacking", f"stacking must be stack, exclusive or best_of:<group>, not "
                     f"{value!r}", node)
