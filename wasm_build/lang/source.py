"""A program file as a tree of positioned nodes, read the way spec 9.1 says.

YAML is read as YAML 1.2 reads it, not as PyYAML's YAML 1.1 default: we take PyYAML's
composer (which only builds nodes) and resolve scalars ourselves, so only `true`/`false` are
booleans, `null`/`~`/empty are null, and every other plain scalar keeps its exact source text
(`1.005` stays `1.005`, `NO` stays `NO`, `2026-07-01` stays text). A `.json` program is parsed
by the strict JSON reader and turned into the same tree, so one checker serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from poprules.errors import InputError, Where
from poprules.jsonio import JSONNumber, Pairs, load_pairs

_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_MAX_NODES = 200_000  # aliases can expand a small file into a huge tree


@dataclass(frozen=True)
class Text:
    """A scalar that is not a boolean or null: its exact text, and whether it was quoted."""

    text: str
    quoted: bool
    where: Where


@dataclass(frozen=True)
class Flag:
    value: bool
    where: Where


@dataclass
class Map:
    """A mapping in file order; keys are their text. Null values are kept as None."""

    items: dict[str, Node | None]
    keys: dict[str, Text | Flag]
    where: Where


@dataclass
class Seq:
    items: list[Node | None]
    where: Where


Node = Text | Flag | Map | Seq


@dataclass
class Document:
    root: Node | None
    # The first repeated key in document order, with the path of the mapping that holds it.
    repeated: tuple[tuple[str | int, ...], str, Where] | None = field(default=None)


def read_program_text(text: str, *, json_syntax: bool) -> Document:
    if json_syntax:
        return _from_json(text)
    return _from_yaml(text)


# --- YAML -------------------------------------------------------------------------------


def _from_yaml(text: str) -> Document:
    try:
        node = yaml.compose(text, Loader=yaml.BaseLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Where(mark.line + 1, mark.column + 1) if mark else None
        raise InputError("program", f"not valid YAML: {exc.problem or exc}", where=where) from None
    except yaml.YAMLError as exc:
        raise InputError("program", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise InputError("program", "the program is nested too deeply") from None
    builder = _YamlBuilder()
    try:
        root = builder.build(node, ())
    except RecursionError:
        raise InputError("program", "the program is nested too deeply") from None
    return Document(root, builder.repeated)


def _where(node: yaml.Node) -> Where:
    return Where(node.start_mark.line + 1, node.start_mark.column + 1)


class _YamlBuilder:
    def __init__(self) -> None:
        self.repeated: tuple[tuple[str | int, ...], str, Where] | None = None
        self.count = 0

    def build(self, node: yaml.Node | None, path: tuple[str | int, ...]) -> Node | None:
        if node is None:
            return None
        self.count += 1
        if self.count > _MAX_NODES:
            raise InputError("program", "the program is too large (too many values)")
        where = _where(node)
        if node.tag not in (
            "tag:yaml.org,2002:str",
            "tag:yaml.org,2002:map",
            "tag:yaml.org,2002:seq",
        ):
            raise InputError("program", f"YAML tags such as {node.tag} are not allowed", where=where)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, where)
        if isinstance(node, yaml.SequenceNode):
            return Seq([self.build(v, (*path, i)) for i, v in enumerate(node.value)], where)
        assert isinstance(node, yaml.MappingNode)
        items: dict[str, Node | None] = {}
        keys: dict[str, Text | Flag] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(
                    "program", "a mapping key must be a plain value", where=_where(key_node)
                )
            key = self.scalar(key_node, _where(key_node))
            name = "" if key is None else key.text if isinstance(key, Text) else str(key.value).lower()
            if name in items:
                if self.repeated is None:
                    self.repeated = (path, name, _where(key_node))
                continue
            keys[name] = key if key is not None else Text("", False, _where(key_node))
            items[name] = self.build(value_node, (*path, name))
        return Map(items, keys, where)

    @staticmethod
    def scalar(node: yaml.ScalarNode, where: Where) -> Text | Flag | None:
        if node.style is not None:  # quoted or block scalar: always text
            return Text(node.value, True, where)
        value = node.value
        if value in _NULLS:
            return None
        if value in _TRUE:
            return Flag(True, where)
        if value in _FALSE:
            return Flag(False, where)
        return Text(value, False, where)


# --- JSON -------------------------------------------------------------------------------


def _from_json(text: str) -> Document:
    raw = load_pairs(text, "program")
    doc = Document(None)
    nowhere = Where()

    def build(value: object, path: tuple[str | int, ...]) -> Node | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return Flag(value, nowhere)
        if isinstance(value, JSONNumber):
            return Text(str(value), False, nowhere)
        if isinstance(value, int):
            return Text(str(value), False, nowhere)
        if isinstance(value, str):
            return Text(value, True, nowhere)
        if isinstance(value, Pairs):
            items: dict[str, Node | None] = {}
            keys: dict[str, Text | Flag] = {}
            for key, item in value:
                if key in items:
                    if doc.repeated is None:
                        doc.repeated = (path, key, nowhere)
                    continue
                keys[key] = Text(key, True, nowhere)
                items[key] = build(item, (*path, key))
            return Map(items, keys, nowhere)
        assert isinstance(value, list)
        return Seq([build(v, (*path, i)) for i, v in enumerate(value)], nowhere)

    try:
        doc.root = build(raw, ())
    except RecursionError:
        raise InputError("program", "the program is nested too deeply") from None
    return doc
