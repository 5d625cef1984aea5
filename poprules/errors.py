"""The one error every host reports for bad input (spec 9.3).

Only the first problem is reported, so loaders raise as soon as they see one; the
exception carries both the contract fields (`rule`, `field`, `text`, `column`, `message`)
and, where the reader knows it, the place in the source file so the CLI can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Where:
    """A place in a source file: 1-based line and column; either may be unknown."""

    line: int | None = None
    column: int | None = None


class InputError(Exception):
    """An invalid program, catalog or request: the whole answer is this one error."""

    def __init__(
        self,
        field: str,
        message: str,
        *,
        rule: str | None = None,
        text: str | None = None,
        column: int | None = None,
        where: Where | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.rule = rule
        self.text = text
        self.column = column
        self.where = where
        self.source: str | None = None

    def in_rule(self, rule: str) -> InputError:
        """Attach the rule id, once: the innermost rule wins."""
        if self.rule is None:
            self.rule = rule
        return self

    def from_source(self, source: str) -> InputError:
        if self.source is None:
            self.source = source
        return self

    def to_json(self) -> dict[str, Any]:
        """The contract shape: `field` always, the rest only when it applies."""
        out: dict[str, Any] = {}
        if self.rule is not None:
            out["rule"] = self.rule
        out["field"] = self.field
        if self.text is not None:
            out["text"] = self.text
            out["column"] = self.column if self.column is not None else 1
        out["message"] = self.message
        return out

    def location(self) -> str:
        """`file:line:col: rule <id>: message`, with the parts that are known."""
        parts: list[str] = []
        if self.source:
            head = self.source
            if self.where and self.where.line is not None:
                head += f":{self.where.line}"
                if self.where.column is not None:
                    head += f":{self.where.column}"
            parts.append(head)
        if self.rule is not None:
            parts.append(f"rule {self.rule}")
        parts.append(f"{self.field}: {self.message}")
        return ": ".join(parts)

    def __str__(self) -> str:
        return self.location()
