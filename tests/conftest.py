"""Shared fixtures: where the spec's examples and the demo program live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples"
DEMO = ROOT / "examples" / "corner-market"


def example_dirs() -> list[Path]:
    if not SPEC_EXAMPLES.is_dir():
        pytest.fail(f"the spec examples are missing: expected {SPEC_EXAMPLES}")
    return sorted(p for p in SPEC_EXAMPLES.iterdir() if p.is_dir())


def catalog_of(case: Path) -> Path:
    csv = case / "catalog.csv"
    return csv if csv.exists() else case / "catalog.json"
