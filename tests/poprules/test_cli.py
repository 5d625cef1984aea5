"""The `poprules` command: answers, error shapes and exit codes (0 ok, 2 invalid, 1 internal)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from poprules.cli import main
from tests.conftest import DEMO, catalog_of, example_dirs

EXAMPLE = example_dirs()[-1]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", example_dirs(), ids=lambda p: p.name)
def test_quote_prints_the_expected_answer(case: Path) -> None:
    code, out, _ = run("quote", str(case / "program.yaml"), str(catalog_of(case)),
                       str(case / "request.json"))
    assert code == 0
    expected = json.loads((case / "expected.json").read_text())
    expected.pop("release", None)
    assert json.loads(out) == expected


def test_check_reports_ok_with_counts() -> None:
    code, out, _ = run("check", str(DEMO / "rules.yaml"), str(DEMO / "catalog.json"))
    assert code == 0
    assert out.startswith("ok: corner-market: 7 rules, 1 coupon sets, 4 items")


def test_check_points_at_file_line_and_column(tmp_path: Path) -> None:
    program = tmp_path / "rules.yaml"
    program.write_text(
        "program: shop\ncurrency: EUR\ntimezone: Europe/Lisbon\nrules:\n"
        "  - id: pickup\n    when: order.fulfilment == \"pickup\"\n    cashback: 10%\n"
    )
    code, out, err = run("check", str(program), str(DEMO / "catalog.json"))
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"{program}:6:11: rule pickup: when: unknown name order.fulfilment"
    )


def test_quote_error_is_json_with_exit_2(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"lines": [{"sku": "NOPE", "qty": 1}], "at": "2026-07-04T10:00Z"}')
    code, out, _ = run("quote", str(DEMO / "rules.yaml"), str(DEMO / "catalog.json"),
                       str(request))
    assert code == 2
    error = json.loads(out)["error"]
    assert error["field"] == "lines[0].sku"
    assert "rule" not in error and "text" not in error


def test_quote_reports_a_missing_file_as_invalid_input(tmp_path: Path) -> None:
    code, out, _ = run("quote", str(tmp_path / "missing.yaml"), str(DEMO / "catalog.json"),
                       str(DEMO / "request.json"))
    assert code == 2
    assert json.loads(out)["error"]["field"] == "program"


def test_catalog_errors_name_the_catalog_file(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"items": [{"sku": "A", "price": "1.005", "category": "x"}]}')
    code, _, err = run("check", str(DEMO / "rules.yaml"), str(catalog))
    assert code == 2
    assert err.startswith(f"{catalog}: catalog.items[0].price:")


def test_explain_shows_amounts_statuses_and_nudges() -> None:
    code, out, _ = run("explain", str(DEMO / "rules.yaml"), str(DEMO / "catalog.json"),
                       str(DEMO / "request.json"))
    assert code == 0
    assert "Pay now 58.70" in out
    assert "pickup-boost    capped: 4.00 (would be 5.87)" in out
    assert "loyalty         applied: 58" in out
    assert "spend 30.33 more for cashback 4% (big-basket)" in out
    assert '"summer-24": valid' in out


def test_internal_errors_exit_1_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("poprules.api.load", broken)
    code, out, err = run("check", str(DEMO / "rules.yaml"), str(DEMO / "catalog.json"))
    assert code == 1
    assert err.strip() == "poprules: internal error: RuntimeError: boom"
    assert "Traceback" not in out + err


def test_installed_command_runs_the_example() -> None:
    exe = Path(sys.executable).parent / "poprules"
    proc = subprocess.run(
        [str(exe), "quote", str(EXAMPLE / "program.yaml"), str(catalog_of(EXAMPLE)),
         str(EXAMPLE / "request.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["payable"] == 4327


def test_check_points_at_the_offending_operator_in_a_condition(tmp_path: Path) -> None:
    program = tmp_path / "rules.yaml"
    program.write_text(
        "program: shop\ncurrency: EUR\ntimezone: Europe/Lisbon\nrules:\n"
        "  - id: big-basket\n    when: order.subtotal >= \"100\"\n    cashback: 4%\n"
    )
    code, _, err = run("check", str(program), str(DEMO / "catalog.json"))
    assert code == 2
    assert err.startswith(f"{program}:6:26: rule big-basket: when: >= cannot combine")


def test_build_then_quote_from_the_bundle_names_the_release(tmp_path: Path) -> None:
    bundle = tmp_path / "release.bundle"
    code, out, _ = run("build", str(EXAMPLE / "program.yaml"), str(catalog_of(EXAMPLE)),
                       "-o", str(bundle))
    assert code == 0
    assert out.startswith(f"{bundle}: ") and "release sha256:" in out
    built_hash = out.split("release ")[1].strip()
    code, out, _ = run("quote", "--bundle", str(bundle), str(EXAMPLE / "request.json"))
    assert code == 0
    answer = json.loads(out)
    release = answer.pop("release")
    assert release == {"program": "corner-market", "hash": built_hash}
    expected = json.loads((EXAMPLE / "expected.json").read_text())
    expected.pop("release", None)
    assert answer == expected


def test_both_engines_print_the_same_answer() -> None:
    args = [str(DEMO / "rules.yaml"), str(DEMO / "catalog.json"), str(DEMO / "request.json")]
    _, wasm, _ = run("quote", *args)
    _, python, _ = run("quote", "--engine", "python", *args)
    assert wasm == python and json.loads(wasm)["totals"]["payable"] == 5870


def test_a_damaged_bundle_is_invalid_input(tmp_path: Path) -> None:
    bundle = tmp_path / "bad.bundle"
    bundle.write_bytes(b"not a bundle")
    code, out, _ = run("quote", "--bundle", str(bundle), str(EXAMPLE / "request.json"))
    assert code == 2
    assert json.loads(out)["error"]["field"] == "bundle"


@pytest.mark.parametrize("args", [
    ["quote", "only-one.json"],
    ["quote", "--bundle", "x.bundle", "a.yaml", "b.json", "c.json"],
])
def test_quote_usage_errors_exit_2(args: list[str]) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert "Usage" in err
