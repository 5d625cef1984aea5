"""The reference evaluator against hand-computed answers.

Every folder of the spec's worked examples and of `cases/` next to this file holds a program,
a catalog, a request and the whole expected quote, worked out by hand from the spec text (the
arithmetic is in each folder's notes.md). The evaluator must reproduce each answer exactly;
only `release` is left out, because a simulation from source files has none (spec 8).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import poprules
from tests.conftest import catalog_of, example_dirs

CASES = Path(__file__).resolve().parent / "cases"


def case_dirs() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir())


def _without_release(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "release"}


@pytest.mark.parametrize(
    "case", [*example_dirs(), *case_dirs()], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_quote_matches_the_hand_computed_answer(case: Path) -> None:
    program = poprules.load(case / "program.yaml", catalog_of(case))
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    answer = poprules.quote(program, case / "request.json")
    assert _without_release(answer) == _without_release(expected)


def test_every_case_folder_is_complete() -> None:
    """A folder missing a file would otherwise fail with a less helpful error, or, for
    notes.md, silently lose the hand computation that justifies its expected answer."""
    for case in case_dirs():
        for path in (case / "program.yaml", catalog_of(case), case / "request.json",
                     case / "expected.json", case / "notes.md"):
            assert path.is_file(), f"{case.name} has no {path.name}"
