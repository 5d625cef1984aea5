"""The compiled module must give exactly the reference evaluator's answer: on every public
example and hand-computed case, and on thousands of seeded random programs × requests."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from poprules import api
from poprules.errors import InputError
from tests.conftest import catalog_of, example_dirs
from wasm_build.random_program import generate_program, generate_request
from wasm_build.reference.quote import quote as reference_quote

CASES = Path(__file__).parent / "reference" / "cases"
REQUESTS_PER_PROGRAM = 4


def all_cases() -> list[Path]:
    return example_dirs() + sorted(p for p in CASES.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", all_cases(), ids=lambda p: p.name)
def test_examples_agree(case: Path) -> None:
    program = api.load(case / "program.yaml", catalog_of(case))
    request = case / "request.json"
    expected = json.loads((case / "expected.json").read_text())
    expected.pop("release", None)
    assert api.quote(program, request, engine="wasm") == expected
    assert api.quote(program, request, engine="python") == expected


@lru_cache(maxsize=8)
def _release(program_yaml: str, catalog_json: str, directory: str):  # type: ignore[no-untyped-def]
    base = Path(directory)
    (base / "program.yaml").write_text(program_yaml)
    (base / "catalog.json").write_text(catalog_json)
    program = api.load(base / "program.yaml", base / "catalog.json")
    return program, api.load_release(api.build(program))


def check_seed(seed: int, directory: Path) -> None:
    generated = generate_program(seed)
    program, release = _release(generated.program_yaml, generated.catalog_json, str(directory))
    for k in range(REQUESTS_PER_PROGRAM):
        raw = generate_request(generated, seed * 100 + k).encode()
        try:
            reference = reference_quote(program, api.read_request(program, raw))
        except InputError as exc:  # the generator may make amounts beyond 64 bits
            pytest.fail(f"seed {seed}/{k}: the reference refused a generated request: {exc}")
        compiled = release.quote(release.read_request(raw), with_release=False)
        assert compiled == reference, f"seed {seed}, request {k}"


@pytest.mark.parametrize("block", range(10))
def test_random_programs_agree(block: int, tmp_path: Path) -> None:
    for seed in range(block * 30, block * 30 + 30):
        check_seed(seed, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(20))
def test_many_random_programs_agree(block: int, tmp_path: Path) -> None:
    for seed in range(10_000 + block * 150, 10_000 + block * 150 + 150):
        check_seed(seed, tmp_path)


def test_orders_beyond_64_bits_get_the_exact_answer_from_sources(tmp_path: Path) -> None:
    case = example_dirs()[-1]
    program = api.load(case / "program.yaml", catalog_of(case))
    huge = {"lines": [{"sku": "TEE-01", "qty": 10**18}], "at": "2026-07-04T10:00:00Z"}
    answer = api.quote(program, huge)
    assert answer["totals"]["subtotal"] == 1990 * 10**18
    assert answer == api.quote(program, huge, engine="python")
    release = api.load_release(api.build(program))
    with pytest.raises(InputError) as refused:
        release.quote(release.read_request(huge))
    assert refused.value.field == "lines"


@pytest.mark.parametrize("block", range(4))
def test_large_carts_agree(block: int, tmp_path: Path) -> None:
    """Carts past 64 lines take the runtime's multi-word line masks; up to the 500-line cap."""
    for seed in range(block * 10, block * 10 + 10):
        generated = generate_program(seed)
        program, release = _release(generated.program_yaml, generated.catalog_json,
                                    str(tmp_path))
        request = json.loads(generate_request(generated, seed))
        skus = [item.sku for item in program.catalog.items]
        size = (65, 127, 200, 500)[seed % 4]
        request["lines"] = [{"sku": skus[(seed + i * 7) % len(skus)], "qty": 1 + (i * 5) % 4}
                            for i in range(size)]
        raw = json.dumps(request).encode()
        reference = reference_quote(program, api.read_request(program, raw))
        compiled = release.quote(release.read_request(raw), with_release=False)
        assert compiled == reference, f"seed {seed}, {size} lines"
