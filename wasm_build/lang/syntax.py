"""Tokenizer and parser of conditions (spec section 5): text → `ast` nodes with source spans.

Literals are read here, exactly (section 2): a decimal number is money in the program's
currency, a percent is ppm, a time without an offset is local to the program's zone. Errors
carry the 1-based column of the offending character, token or name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from poprules.literals import BadLiteral, parse_amount, parse_integer, parse_percent, parse_time
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
)

KEYWORDS = frozenset(["and", "or", "not", "in", "true", "false", "count", "sum", "any", "all"])
AGGREGATES = frozenset(["count", "sum", "any", "all"])
_COMPARE = frozenset(["==", "!=", "<", "<=", ">", ">="])
# Every later pass (type checking, evaluation, code generation) recurses over the tree, and
# so does this parser over parentheses, `not` and aggregates: a bound on nesting is what
# keeps a hostile condition a compile error rather than a RecursionError.
MAX_DEPTH = 50
_TOO_DEEP = f"the expression is nested too deeply (more than {MAX_DEPTH} levels)"

_SPACE = re.compile(r"[ \t\r\n]+")
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?%?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "(", ")", "[", "]", ",")


class ExprError(ValueError):
    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


@dataclass(frozen=True)
class Token:
    kind: str  # name, keyword, literal, op, end
    text: str
    start: int
    end: int
    literal: Const | None = None


@dataclass(frozen=True)
class LiteralContext:
    """What literals need to be read exactly: the currency's decimals and the zone."""

    places: int
    zone: ZoneInfo


def tokenize(text: str, ctx: LiteralContext) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _SPACE.match(text, pos)
        if m:
            pos = m.end()
            continue
        ch = text[pos]
        if "0" <= ch <= "9":  # str.isdigit() is also true of "²" and "٣"
            tokens.append(_number_or_time(text, pos, ctx))
        elif ch == '"':
            tokens.append(_string(text, pos))
        elif (m := _WORD.match(text, pos)) is not None:
            word = m.group()
            if word not in KEYWORDS and word.lower() in KEYWORDS:
                raise ExprError(pos + 1, f"keywords are lowercase: write {word.lower()}")
            kind = "keyword" if word in KEYWORDS else "name"
            if kind == "keyword" and word in ("true", "false"):
                lit = Const(pos, m.end(), Type.BOOL, word == "true")
                tokens.append(Token("literal", word, pos, m.end(), lit))
            else:
                tokens.append(Token(kind, word, pos, m.end()))
        else:
            for op in _OPERATORS:
                if text.startswith(op, pos):
                    tokens.append(Token("op", op, pos, pos + len(op)))
                    break
            else:
                raise ExprError(pos + 1, f"unexpected character {ch!r}")
        pos = tokens[-1].end
    tokens.append(Token("end", "", n, n))
    return tokens


def _number_or_time(text: str, pos: int, ctx: LiteralContext) -> Token:
    m = _TIME.match(text, pos)
    if m is not None:
        word = m.group()
        try:
            value = parse_time(word, ctx.zone, allow_fraction=False)
        except BadLiteral as exc:
            raise ExprError(pos + 1, str(exc)) from None
        return _literal_token(text, pos, m.end(), Const(pos, m.end(), Type.TIME, value))
    if _DATE.match(text, pos):
        raise ExprError(pos + 1, "a date alone is not a time: write YYYY-MM-DDTHH:MM")
    m = _NUMBER.match(text, pos)
    assert m is not None
    word = m.group()
    try:
        if word.endswith("%"):
            lit = Const(pos, m.end(), Type.PERCENT, parse_percent(word))
        elif "." in word:
            lit = Const(pos, m.end(), Type.MONEY, parse_amount(word, ctx.places))
        else:
            lit = Const(pos, m.end(), Type.UNTYPED, parse_integer(word))
    except BadLiteral as exc:
        raise ExprError(pos + 1, str(exc)) from None
    return _literal_token(text, pos, m.end(), lit)


def _literal_token(text: str, start: int, end: int, lit: Const) -> Token:
    if end < len(text) and (text[end].isalnum() or text[end] in "_.%:"):
        raise ExprError(
            start + 1, f"malformed literal {text[start:end + 1]!r} (durations are not conditions)"
        )
    return Token("literal", text[start:end], start, end, lit)


def _string(text: str, pos: int) -> Token:
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            lit = Const(pos, i + 1, Type.STRING, "".join(out))
            return Token("literal", text[pos : i + 1], pos, i + 1, lit)
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in ('"', "\\"):
                raise ExprError(i + 1, 'only \\" and \\\\ are escapes in a string')
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExprError(pos + 1, "string is not closed")


def parse(text: str, ctx: LiteralContext) -> Node:
    """Parse one condition or value expression; raises ExprError at the offending column."""
    if not text.strip():
        raise ExprError(1, "the expression is empty")
    parser = _Parser(tokenize(text, ctx))
    node = parser.expression()
    tok = parser.peek()
    if tok.kind != "end":
        raise ExprError(tok.start + 1, f"unexpected {tok.text!r}")
    _check_depth(node)
    return node


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Paren):
        return (node.inner,)
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Logic):
        return node.operands
    if isinstance(node, (Compare, Arith)):
        return node.left, node.right
    if isinstance(node, InList):
        return (node.value, *node.items)
    if isinstance(node, InSet):
        return node.value, node.collection
    if isinstance(node, Aggregate):
        return tuple(n for n in (node.value, node.condition) if n is not None)
    return ()


def _check_depth(root: Node) -> None:
    """Refuse a tree deeper than MAX_DEPTH; iterative, since a long `+` chain nests without
    any parenthesis. The column is the start of the first node (in source order) too deep."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(node.start + 1, _TOO_DEEP)
        stack.extend((child, depth + 1) for child in reversed(_children(node)))



class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0  # parentheses, `not` and aggregates open around the current token

    def nest(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(tok.start + 1, _TOO_DEEP)

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        tok = self.peek()
        self.pos += 1
        return tok

    def is_(self, kind: str, text: str | None = None, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == kind and (text is None or tok.text == text)

    def expect(self, kind: str, text: str) -> Token:
        tok = self.peek()
        if tok.kind != kind or tok.text != text:
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise ExprError(tok.start + 1, f"expected {text!r}, found {found}")
        return self.take()

    def expression(self) -> Node:
        return self.logic("or", self.and_)

    def and_(self) -> Node:
        return self.logic("and", self.not_)

    def logic(self, op: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        operands = [first]
        columns: list[int] = []
        while self.is_("keyword", op):
            columns.append(self.take().start + 1)
            operands.append(operand())
        if len(operands) == 1:
            return first
        return Logic(first.start, operands[-1].end, op, tuple(operands), tuple(columns))

    def not_(self) -> Node:
        if self.is_("keyword", "not"):
            tok = self.take()
            self.nest(tok)
            operand = self.not_()
            self.depth -= 1
            return Not(tok.start, operand.end, operand)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        node = self.comparison_tail(left)
        if node is not left:
            tok = self.peek()
            if (tok.kind == "op" and tok.text in _COMPARE) or self.is_("keyword", "in") or (
                self.is_("keyword", "not") and self.is_("keyword", "in", 1)
            ):
                raise ExprError(tok.start + 1, "comparisons do not chain: use and")
        return node

    def comparison_tail(self, left: Node) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in _COMPARE:
            self.take()
            right = self.additive()
            return Compare(left.start, right.end, tok.text, left, right, tok.start)
        negated = False
        if self.is_("keyword", "not") and self.is_("keyword", "in", 1):
            self.take()
            negated = True
        if self.is_("keyword", "in"):
            op = self.take()
            if self.is_("op", "["):
                items, end = self.literal_list()
                return InList(left.start, end, left, items, negated, op.start)
            right = self.additive()
            return InSet(left.start, right.end, left, right, negated, op.start)
        return left

    def literal_list(self) -> tuple[tuple[Const, ...], int]:
        self.expect("op", "[")
        items: list[Const] = []
        if not self.is_("op", "]"):
            while True:
                tok = self.take()
                if tok.kind != "literal" or tok.literal is None:
                    raise ExprError(tok.start + 1, "a list holds literals only")
                items.append(tok.literal)
                if not self.is_("op", ","):
                    break
                self.take()
        close = self.expect("op", "]")
        return tuple(items), close.end

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            op = self.take()
            right = self.multiplicative()
            node = Arith(node.start, right.end, op.text, node, right, op.start)
        return node

    def multiplicative(self) -> Node:
        node = self.atom()
        while self.is_("op", "*"):
            op = self.take()
            right = self.atom()
            node = Arith(node.start, right.end, "*", node, right, op.start)
        return node

    def atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "literal":
            self.take()
            assert tok.literal is not None
            return tok.literal
        if tok.kind == "name":
            self.take()
            return Name(tok.start, tok.end, tok.text)
        if tok.kind == "op" and tok.text == "(":
            self.take()
            self.nest(tok)
            inner = self.expression()
            close = self.expect("op", ")")
            self.depth -= 1
            return Paren(tok.start, close.end, inner)
        if tok.kind == "keyword" and tok.text in AGGREGATES:
            return self.aggregate()
        if tok.kind == "end":
            raise ExprError(tok.start + 1, "the expression ends too early")
        raise ExprError(tok.start + 1, f"unexpected {tok.text!r}")

    def aggregate(self) -> Node:
        name = self.take()
        self.nest(name)
        self.expect("op", "(")
        first = self.expression()
        second: Node | None = None
        if name.text == "sum" and self.is_("op", ","):
            self.take()
            second = self.expression()
        close = self.expect("op", ")")
        self.depth -= 1
        if name.text == "sum":
            return Aggregate(name.start, close.end, "sum", first, second)
        return Aggregate(name.start, close.end, name.text, None, first)
