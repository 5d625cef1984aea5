"""The planner: a checked `Program` → the module's image (int64 words, `wasm_build.abi`)
and the tables a host needs to encode requests and decode answers.

The image holds only numbers: strings are ids into one interned table, expression trees are
node records, rules are fixed-size records in evaluation order. Text the quote shows (rule
ids, `failed` texts, `gives`, `toward`) stays in the host tables, so the module never handles
text. Everything is laid out in a deterministic order, so the same program gives the same
words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from poprules.currency import format_amount
from wasm_build import abi
from wasm_build.lang.analysis import and_chain, is_spend, spend_threshold
from wasm_build.lang.ast import (
    Aggregate,
    Arith,
    Compare,
    Const,
    InList,
    InSet,
    Logic,
    Name,
    Node,
    Not,
    Paren,
    Type,
    uses_name,
)
from wasm_build.lang.model import (
    Cashback,
    Credit,
    Discount,
    Expression,
    FreeItems,
    Keyed,
    Lane,
    Percent,
    PerUnit,
    Points,
    Program,
    Rounding,
    Rule,
    Stacking,
    Tiers,
    Value,
    ValueSpec,
)
from wasm_build.lang.typecheck import type_of
from wasm_build.zone_table import transitions

_TYPES = {
    Type.MONEY: abi.T_MONEY, Type.INT: abi.T_INT, Type.BOOL: abi.T_BOOL,
    Type.STRING: abi.T_STRING, Type.SET: abi.T_SET, Type.TIME: abi.T_TIME,
    Type.PERCENT: abi.T_PERCENT,
}
_CMP = {"==": abi.CMP_EQ, "!=": abi.CMP_NE, "<": abi.CMP_LT, "<=": abi.CMP_LE,
        ">": abi.CMP_GT, ">=": abi.CMP_GE}
_ARITH = {"+": abi.ARITH_ADD, "-": abi.ARITH_SUB, "*": abi.ARITH_MUL}
_AGG = {"count": abi.AGG_COUNT, "sum": abi.AGG_SUM, "any": abi.AGG_ANY, "all": abi.AGG_ALL}
_ROUNDING = {Rounding.HALF_EVEN: abi.ROUND_HALF_EVEN, Rounding.HALF_UP: abi.ROUND_HALF_UP,
             Rounding.DOWN: abi.ROUND_DOWN}
_LANES = {Lane.INSTANT: abi.LANE_INSTANT, Lane.WALLET: abi.LANE_WALLET,
          Lane.CHOICE: abi.LANE_CHOICE}
_STACKING = {Stacking.STACK: abi.STACK_STACK, Stacking.EXCLUSIVE: abi.STACK_EXCLUSIVE,
             Stacking.BEST_OF: abi.STACK_BEST_OF}
_KINDS = {Discount: abi.REWARD_DISCOUNT, FreeItems: abi.REWARD_FREE_ITEMS,
          Cashback: abi.REWARD_CASHBACK, Points: abi.REWARD_POINTS, Credit: abi.REWARD_CREDIT}


@dataclass(frozen=True)
class Plan:
    """The image and the host tables of one program."""

    words: tuple[int, ...]
    tables: dict[str, Any]  # plain data (msgpack-able): see `_tables`


def plan(program: Program) -> Plan:
    return _Planner(program).run()


def value_words(value: Value) -> tuple[int, int]:
    if isinstance(value, Percent):
        return abi.VALUE_PERCENT, value.ppm
    if isinstance(value, PerUnit):
        return abi.VALUE_PER_UNIT, value.minor
    return abi.VALUE_AMOUNT, value.minor


class _Planner:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.strings: dict[str, int] = {}
        self.pool: list[int] = []
        self.nodes: list[list[int]] = []
        self.node_texts: list[str] = []
        self.attributes = list(program.catalog.attributes)
        self.lowered: dict[int, int] = {}  # id(node) -> record: a `when` and its chain share nodes

    def string(self, text: str) -> int:
        return self.strings.setdefault(text, len(self.strings))

    def list_of(self, values: list[int]) -> int:
        start = len(self.pool)
        self.pool.extend(values)
        return start

    # --- expressions ---------------------------------------------------------------------

    def node(self, node: Node, text: str) -> int:
        """Lower a checked expression; parentheses vanish (a failing node's text is
        reported without them), so each record's text is its own span."""
        while isinstance(node, Paren):
            node = node.inner
        if id(node) in self.lowered:
            return self.lowered[id(node)]
        record = [0] * abi.NODE_WORDS
        record[abi.N_TYPE] = _TYPES[type_of(node)]
        if isinstance(node, Const):
            record[abi.N_KIND], record[abi.N_A] = abi.K_CONST, self.constant(node)
        elif isinstance(node, Name):
            record[abi.N_KIND], record[abi.N_A] = abi.K_NAME, self.name_code(node.name)
        elif isinstance(node, Not):
            record[abi.N_KIND], record[abi.N_A] = abi.K_NOT, self.node(node.operand, text)
        elif isinstance(node, Logic):
            children = [self.node(o, text) for o in node.operands]
            record[abi.N_KIND] = abi.K_AND if node.op == "and" else abi.K_OR
            record[abi.N_A], record[abi.N_B] = self.list_of(children), len(children)
        elif isinstance(node, Compare):
            report_right = not uses_name(node.left) and uses_name(node.right)
            record[abi.N_KIND], record[abi.N_A] = abi.K_CMP, _CMP[node.op]
            record[abi.N_B], record[abi.N_C] = self.node(node.left, text), self.node(node.right, text)
            record[abi.N_D] = int(report_right)
        elif isinstance(node, Arith):
            record[abi.N_KIND], record[abi.N_A] = abi.K_ARITH, _ARITH[node.op]
            record[abi.N_B], record[abi.N_C] = self.node(node.left, text), self.node(node.right, text)
        elif isinstance(node, InList):
            constants = [self.constant(item) for item in node.items]
            record[abi.N_KIND], record[abi.N_A] = abi.K_INLIST, self.node(node.value, text)
            record[abi.N_B], record[abi.N_C] = self.list_of(constants), len(constants)
            record[abi.N_D] = int(node.negated)
        elif isinstance(node, InSet):
            report_set = not uses_name(node.value) and uses_name(node.collection)
            record[abi.N_KIND], record[abi.N_A] = abi.K_INSET, self.node(node.value, text)
            record[abi.N_B] = self.node(node.collection, text)
            record[abi.N_C], record[abi.N_D] = int(node.negated), int(report_set)
        elif isinstance(node, Aggregate):
            record[abi.N_KIND], record[abi.N_A] = abi.K_AGG, _AGG[node.func]
            record[abi.N_B] = -1 if node.value is None else self.node(node.value, text)
            record[abi.N_C] = -1 if node.condition is None else self.node(node.condition, text)
        else:
            raise TypeError(node)
        self.nodes.append(record)
        self.node_texts.append(text[node.start : node.end])
        self.lowered[id(node)] = len(self.nodes) - 1
        return len(self.nodes) - 1

    def constant(self, node: Const) -> int:
        if node.type is Type.STRING:
            assert isinstance(node.value, str)
            return self.string(node.value)
        assert isinstance(node.value, int)  # bool is an int: True -> 1
        return int(node.value)

    def name_code(self, name: str) -> int:
        if name in abi.NAME_CODE:
            return abi.NAME_CODE[name]
        return abi.NAME_ATTR + self.attributes.index(name.removeprefix("item."))

    def expression(self, expr: Expression | None) -> int:
        return -1 if expr is None else self.node(expr.node, expr.text)

    # --- rules ---------------------------------------------------------------------------

    def rule(self, rule: Rule, groups: dict[str, int], sets: dict[str, int]) -> list[int]:
        r = [0] * abi.RULE_WORDS
        reward = rule.reward
        r[abi.R_PHASE], r[abi.R_KIND] = rule.phase, _KINDS[type(reward)]
        active = rule.active
        r[abi.R_FROM] = abi.NONE if active is None or active.start is None else active.start
        r[abi.R_UNTIL] = abi.NONE if active is None or active.until is None else active.until
        days = None if active is None else active.days
        r[abi.R_DAYS] = abi.NONE if days is None else sum(1 << d for d in days)
        hours = None if active is None else active.hours
        r[abi.R_HOURS_START] = abi.NONE if hours is None else hours[0]
        r[abi.R_HOURS_END] = abi.NONE if hours is None else hours[1]
        r[abi.R_WHEN] = self.expression(rule.when)
        r[abi.R_ITEMS] = self.expression(rule.items)
        r[abi.R_COUPON] = -1 if rule.coupon is None else sets[rule.coupon]
        spec: ValueSpec | None = None
        if isinstance(reward, (Discount, Cashback)):
            spec = reward.value
        elif isinstance(reward, Credit):
            spec = reward.amount
        self.spec(r, spec)
        if isinstance(reward, FreeItems):
            r[abi.R_ARG1], r[abi.R_ARG2] = reward.buy, reward.get
        elif isinstance(reward, Points):
            r[abi.R_ARG1], r[abi.R_ARG2] = reward.every, reward.award
        elif isinstance(reward, Cashback):
            r[abi.R_ARG1], r[abi.R_ARG2] = _LANES[reward.lane], reward.vest
            r[abi.R_REFERRER] = int(reward.to_referrer)
        expires = reward.expires if isinstance(reward, (Cashback, Credit)) else None
        r[abi.R_EXPIRES] = abi.NONE if expires is None else expires
        r[abi.R_CAP_LINE] = abi.NONE if rule.cap.line is None else rule.cap.line
        r[abi.R_CAP_ORDER] = abi.NONE if rule.cap.order is None else rule.cap.order
        r[abi.R_STACKING] = _STACKING[rule.stacking]
        r[abi.R_GROUP] = -1 if rule.group is None else groups.setdefault(rule.group, len(groups))
        chain: list[int] = []
        if rule.when is not None:
            for operand in and_chain(rule.when.node):
                shape = spend_threshold(operand)
                chain.append(self.node(operand, rule.when.text))
                if shape is None:
                    chain += [-1, -1, 0]
                else:
                    spend, threshold, strict = shape
                    chain += [self.node(spend, rule.when.text),
                              self.node(threshold, rule.when.text), int(strict)]
        r[abi.R_CHAIN], r[abi.R_CHAIN_N] = self.list_of(chain), len(chain) // 4
        return r

    def spec(self, r: list[int], spec: ValueSpec | None) -> None:
        if spec is None:
            r[abi.R_SPEC] = abi.SPEC_NONE
        elif isinstance(spec, Tiers):
            r[abi.R_SPEC] = abi.SPEC_TIERS
            r[abi.R_SPEC_NODE] = self.node(spec.basis.node, spec.basis.text)
            triples = [w for step in spec.steps for w in (step.min, *value_words(step.value))]
            r[abi.R_SPEC_LIST], r[abi.R_SPEC_N] = self.list_of(triples), len(spec.steps)
            r[abi.R_BASIS_SPEND] = int(is_spend(spec.basis.node))
        elif isinstance(spec, Keyed):
            r[abi.R_SPEC] = abi.SPEC_KEYED
            r[abi.R_SPEC_NODE] = self.node(spec.by.node, spec.by.text)
            triples = [w for key, value in spec.values.items()
                       for w in (self.string(key), *value_words(value))]
            r[abi.R_SPEC_LIST], r[abi.R_SPEC_N] = self.list_of(triples), len(spec.values)
        else:
            r[abi.R_SPEC] = abi.SPEC_PLAIN
            r[abi.R_VALUE_KIND], r[abi.R_VALUE] = value_words(spec)

    # --- the image -----------------------------------------------------------------------

    def run(self) -> Plan:
        program = self.program
        items: list[int] = []
        for item in program.catalog.items:
            # interned in sorted order: set order changes with the hash seed, and the ids with it
            tags = sorted(self.string(t) for t in sorted(item.tags))
            items += [self.string(item.sku), item.price, self.string(item.category),
                      self.string(item.brand), self.list_of(tags), len(tags)]
            for name in self.attributes:
                value = item.attributes[name]
                items.append(self.string(value) if isinstance(value, str) else int(value))
        sets = {s.id: i for i, s in enumerate(program.coupons)}
        groups: dict[str, int] = {}
        order = program.evaluation_order
        records = [self.rule(rule, groups, sets) for rule in order]
        link_groups(records)
        rules = [w for record in records for w in record]
        coupons = [abi.NONE if s.expires is None else s.expires for s in program.coupons]
        zone = transitions(program.timezone)
        zone_words = [w for start, offset in zone for w in (start, offset)]
        zone_words[0] = abi.NONE
        nodes = [w for record in self.nodes for w in record]

        header = [0] * abi.HEADER_WORDS
        body: list[int] = []

        def section(words: list[int]) -> int:
            start = abi.HEADER_WORDS + len(body)
            body.extend(words)
            return start

        header[abi.H_MAGIC] = abi.IMAGE_MAGIC
        header[abi.H_ROUNDING] = _ROUNDING[program.rounding]
        header[abi.H_N_ITEMS], header[abi.H_ITEMS] = len(program.catalog.items), section(items)
        header[abi.H_N_ATTRS] = len(self.attributes)
        header[abi.H_N_RULES], header[abi.H_RULES] = len(order), section(rules)
        header[abi.H_NODES] = section(nodes)
        header[abi.H_N_COUPON_SETS] = len(program.coupons)
        header[abi.H_COUPON_SETS] = section(coupons)
        header[abi.H_N_TRANSITIONS], header[abi.H_TRANSITIONS] = len(zone), section(zone_words)
        header[abi.H_N_STRINGS] = len(self.strings)
        header[abi.H_LISTS] = section(self.pool)
        header[abi.H_SCRATCH_WORDS] = scratch_words(len(order))
        return Plan(tuple(header + body), self.tables(order, zone))

    def tables(self, order: tuple[Rule, ...], zone: tuple[tuple[int, int], ...]) -> dict[str, Any]:
        program = self.program
        places = program.places
        rules = []
        for rule in order:
            reward = rule.reward
            entry: dict[str, Any] = {"id": rule.id, "key": reward.key}
            spec = reward.value if isinstance(reward, (Discount, Cashback)) else (
                reward.amount if isinstance(reward, Credit) else None)
            if isinstance(spec, Tiers):
                entry["basis"] = spec.basis.text
                entry["lowest"] = format_amount(spec.steps[0].min, places)
            if isinstance(spec, Keyed):
                entry["by"] = spec.by.text
            if isinstance(reward, Credit):
                entry["toward"] = reward.toward.text
            if isinstance(reward, FreeItems):
                entry["gives"] = f"free_items buy {reward.buy} get {reward.get}"
            if isinstance(reward, Points):
                entry["gives"] = f"points {reward.award} per {format_amount(reward.every, places)}"
            rules.append(entry)
        return {
            "program": program.name,
            "currency": program.currency,
            "places": places,
            "timezone": program.timezone,
            "zone": [list(t) for t in zone],
            "strings": list(self.strings),
            "skus": [item.sku for item in program.catalog.items],
            "rules": rules,
            "nodes": self.node_texts,
            "coupon_sets": [s.id for s in program.coupons],
        }


def link_groups(records: list[list[int]]) -> None:
    """R_NEXT_MEMBER: each best_of member points at the next one of its group, so the runtime
    assesses a group at its first member without scanning every rule after it."""
    following: dict[int, int] = {}  # group -> its member seen last, walking backwards
    for index in range(len(records) - 1, -1, -1):
        group = records[index][abi.R_GROUP]
        records[index][abi.R_NEXT_MEMBER] = following.get(group, -1)  # never set for -1
        if group >= 0:
            following[group] = index


def scratch_words(rules: int) -> int:
    """Per-evaluation working space after the image: per-rule records plus line buffers."""
    return 16 * rules + 16 * 1024
