"""The Cloudflare Worker's runtime gives the wasmtime host's answers byte for byte (issue 7).

Everything runs in ONE Node-Pyodide process (start-up costs ~3 s), driven by
parity_driver.py: the bundle of every public example, of a generated 100-rule release (over
1,000 seeded random requests and the benchmark's 20-line carts) and of 20 small random
programs, with bad and odd requests against each example and the 100-rule release, each quoted
under Pyodide with `JsEngine` and here with `WasmtimeEngine`, compared as the JSON texts a PoP
sends; plus the JS adapter's checks on hand-written modules (tests/edge_worker/test_engine.py
holds the same modules for wasmtime). The generated release runs the way a Worker runs it:
precompiled, with run-time compilation refused as workerd refuses it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import wasmtime

from bench.quote import make_carts
from edge_worker.core.release import Release
from edge_worker.engines.wasmtime_engine import WasmtimeEngine
from poprules import api
from tests.conftest import catalog_of, example_dirs
from tests.edge_worker.pyodide.parity_driver import answer
from tests.edge_worker.test_engine import COPY, COUNTER, GROW, MEMORY, PAGES, module
from wasm_build import abi
from wasm_build.random_program import generate_program, generate_request

DRIVER = Path(__file__).with_name("parity_driver.py")
SEED = 17
RANDOM_REQUESTS = 1_000
SMALL_PROGRAMS = 20  # small random programs of every shape, a few requests each
SMALL_REQUESTS = 10
# poprules/literals.py puts CPython's own datetime message in this error, and Python 3.14
# (Pyodide) words it differently from 3.11: "month must be in 1..12, not 13".
INVALID_MONTH = "2026-13-01T00:00:00Z"


def edge_requests(valid: dict[str, Any]) -> list[bytes]:
    """Bad requests, which every host must refuse with the same spec 9.3 error, and odd but
    valid ones (an empty cart, unknown keys, 5,000 coupons, amounts near 64 bits), each built
    around a valid request so that the one thing odd is the thing named."""
    sku = valid["lines"][0]["sku"]

    def but(**changes: Any) -> bytes:
        return json.dumps({**valid, **changes}, ensure_ascii=False).encode()

    without_at = {k: v for k, v in valid.items() if k != "at"}
    return [
        b"", b"not json", b"[]", b"{}", b"\xff\xfe{}", b'{"lines": [}', b"null",
        b'{"lines": [], "lines": []}',
        b"[" * 5_000 + b"]" * 5_000,  # deep nesting: Pyodide's stack is smaller than CPython's
        json.dumps(without_at).encode(),
        but(lines=[]),
        but(lines=[{"sku": "NO-SUCH-SKU", "qty": 1}]),
        but(lines=[{"sku": sku, "qty": 0}]),
        but(lines=[{"sku": sku, "qty": -1}]),
        but(lines=[{"sku": sku, "qty": 1.5}]),
        but(lines=[{"sku": sku, "qty": "2"}]),
        but(lines=[{"sku": sku, "qty": 10**30}]),
        but(lines=[{"sku": sku, "qty": 4_000_000_000_000_000}]),
        but(lines=[{"sku": sku, "qty": 5_000_000_000_000_000}]),  # amounts beyond 64 bits
        but(lines=[{"sku": sku, "qty": 1, "price": "0.01"}]),
        but(lines=[{"sku": sku, "qty": 1}] * 501),
        but(at=INVALID_MONTH),
        but(at="yesterday"),
        but(channel=7),
        but(coupons="SUMMER"),
        but(coupons=[f"CODE-{i}" for i in range(5_000)]),
        but(customer={"tier": 1}),
        but(customer={"orders": -1}),
        but(prefer="cash"),
        but(unknown_field=True),
        but(lines=[{"sku": "é" * 10_000, "qty": 1}]),
        json.dumps(valid).replace('"qty": ', '"qty": NaN, "x": ', 1).encode(),
    ]


@dataclass(frozen=True)
class ReleaseCase:
    name: str
    bundle: bytes
    requests: list[bytes]
    edge: int  # the last `edge` requests are edge_requests()
    precompiled: bool  # run as a Worker runs it: compiled before, compilation refused


def example_cases() -> list[ReleaseCase]:
    cases = []
    for case in example_dirs():
        bundle = api.build(api.load(case / "program.yaml", catalog_of(case)))
        raw = (case / "request.json").read_bytes()
        edge = edge_requests(json.loads(raw))
        cases.append(ReleaseCase(case.name, bundle, [raw, *edge], len(edge), precompiled=False))
    return cases


def generated_cases(directory: Path) -> list[ReleaseCase]:
    generated = generate_program(SEED, rules=100, items=2_000)
    program, catalog = directory / "program.yaml", directory / "catalog.json"
    program.write_text(generated.program_yaml, encoding="utf-8")
    catalog.write_text(generated.catalog_json, encoding="utf-8")
    bundle = api.build(api.load(program, catalog))
    random = [generate_request(generated, seed).encode() for seed in range(RANDOM_REQUESTS)]
    carts = [json.dumps(cart).encode() for seed in (SEED, SEED + 1)
             for cart in make_carts(generated, seed)]
    edge = edge_requests(json.loads(random[0]))
    cases = [ReleaseCase("generated-100-rules", bundle, [*random, *carts, *edge], len(edge),
                         precompiled=True)]
    for seed in range(SMALL_PROGRAMS):
        small = generate_program(1_000 + seed)
        directory = directory / f"small-{seed}"
        directory.mkdir()
        (directory / "p.yaml").write_text(small.program_yaml, encoding="utf-8")
        (directory / "c.json").write_text(small.catalog_json, encoding="utf-8")
        requests = [generate_request(small, n).encode() for n in range(SMALL_REQUESTS)]
        cases.append(ReleaseCase(f"small-{1_000 + seed}", api.build(
            api.load(directory / "p.yaml", directory / "c.json")), requests, 0,
            precompiled=False))
    return cases


# (module, steps, what each step must give): a step is ["run", words, read] or
# ["read", start, count]; an outcome is "ok STATUS WORDS", or the error's class and message.
def i64_evaluate() -> bytes:
    return bytes(wasmtime.wat2wasm(
        f'(module {MEMORY} (func (export "evaluate") (result i64) (i64.const 0)))'))


MODULES: list[tuple[str, bytes, list[list[Any]], list[str]]] = [
    ("words round trip", COPY,
     [["run", [7, 0, -1, 2**63 - 1, -(2**63), abi.NONE, 123_456_789_012], 7],
      ["read", 3, 2], ["run", [-3], 0], ["run", [5], 0]],
     [f"ok 7 {[7, 0, -1, 2**63 - 1, -(2**63), abi.NONE, 123_456_789_012]}",
      f"ok {[2**63 - 1, -(2**63)]}", "ok -3 []", "ok 5 []"]),
    ("host misuse", COPY,
     [["run", [0] * (abi.INPUT_WORDS + 1), 0], ["run", [2**63], 0], ["read", 0, 1],
      ["run", [1, 2], 0], ["read", 0, 2], ["read", abi.OUTPUT_WORDS - 1, 2],
      ["run", [1], abi.OUTPUT_WORDS + 1]],
     ["EngineError: .*input area", "EngineError: .*not a signed 64-bit integer",
      "EngineError: no evaluation to read", "ok 1 []", "ok [1, 2]",
      "EngineError: .*outside the output area", "EngineError: .*output area"]),
    ("a trap discards the instance", COUNTER,
     [["run", [0], 1], ["run", [0], 1], ["run", [1], 1], ["read", 0, 1], ["run", [0], 1]],
     ["ok 0 [1]", "ok 0 [2]", "EngineError: the rule module trapped: .*unreachable",
      "EngineError: no evaluation to read", "ok 0 [1]"]),
    ("imports", module("(i32.const 0)", extra='(import "env" "now" (func (result i64)))'), [],
     ["InvalidModule: .*imports env.now: a rule module must import nothing"]),
    ("memory without max", module("(i32.const 0)", memory=f'(memory (export "memory") {PAGES})'),
     [], ["InvalidModule: .*min = max pages"]),
    ("memory min < max",
     module("(i32.const 0)", memory=f'(memory (export "memory") {PAGES} {PAGES + 1})'), [],
     ["InvalidModule: .*min = max pages"]),
    ("memory too small", module("(i32.const 0)", memory='(memory (export "memory") 1 1)'), [],
     ["InvalidModule: .*does not hold the ABI's input and output areas"]),
    ("memory too large", module("(i32.const 0)", memory='(memory (export "memory") 5000 5000)'),
     [], ["InvalidModule: .*exceeds this engine's limit"]),
    ("memory not exported", module("(i32.const 0)", memory=f"(memory {PAGES} {PAGES})"), [],
     ["InvalidModule: .*export its memory as `memory`"]),
    ("evaluate takes a parameter", bytes(wasmtime.wat2wasm(
        f'(module {MEMORY} (func (export "evaluate") (param i32) (result i32) (i32.const 0)))')),
     [], ["InvalidModule: .*`evaluate` of type \\(\\) -> i32"]),
    ("evaluate returns i64", i64_evaluate(), [],
     ["InvalidModule: .*`evaluate` of type \\(\\) -> i32"]),
    ("no evaluate", bytes(wasmtime.wat2wasm(f"(module {MEMORY})")), [],
     ["InvalidModule: .*`evaluate` of type"]),
    ("fails while starting",
     module("(i32.const 0)", extra=f'(data (i32.const {PAGES * abi.PAGE}) "x")'), [],
     ["InvalidModule: .*while starting: .*out of bounds"]),
    ("does not compile", b"\0asm\1\0\0\0\xff", [], ["InvalidModule: .*does not compile"]),
    ("not wasm", b"(module)", [], ["InvalidModule: not a WebAssembly binary"]),
    ("memory cannot grow", GROW, [["run", [], 2]], [f"ok 0 {[-1, PAGES]}"]),
]


@dataclass(frozen=True)
class Run:
    cases: list[ReleaseCase]
    here: list[list[str]]
    there: dict[str, Any]


def shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory per test session: under pytest-xdist, every worker of the session shares
    it, so the Pyodide run happens once however the tests are spread over the workers."""
    session = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if session is None:
        return tmp_path_factory.mktemp("parity")
    directory = tmp_path_factory.getbasetemp().parent / f"parity-{session}"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def run(pyodide: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    work = shared_directory(tmp_path_factory)
    cases = example_cases() + generated_cases(tmp_path_factory.mktemp("programs"))
    engine = WasmtimeEngine(use_cache=False)
    here = []
    for case in cases:
        release = Release.load(case.bundle, engine)
        here.append([answer(release, raw) for raw in case.requests])
    packed = msgpack.packb({
        "releases": [[c.bundle, c.requests, c.precompiled] for c in cases],
        "modules": [[wasm, steps] for _, wasm, steps, _ in MODULES],
    })
    # Named by the cases' digest: builds are reproducible, so every worker packs the same.
    name = hashlib.sha256(packed).hexdigest()[:16]
    answers = work / f"answers-{name}.msgpack"
    with open(work / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not answers.exists():
            (work / f"cases-{name}.msgpack").write_bytes(packed)
            pyodide(DRIVER, f"/work/cases-{name}.msgpack", f"/work/{answers.name}",
                    mounts={work: "/work"})
    there = msgpack.unpackb(answers.read_bytes())
    assert len(there["answers"]) == len(cases)
    return Run(cases, here, there)


def known_divergence(raw: bytes) -> bool:
    return INVALID_MONTH.encode() in raw


def mismatches(run: Run, names: set[str] | None = None, *, known: bool = False) -> list[str]:
    """The requests answered differently; `known` looks at the known divergence only."""
    found = []
    for case, here, there in zip(run.cases, run.here, run.there["answers"], strict=True):
        if names is not None and case.name not in names:
            continue
        assert len(here) == len(there) == len(case.requests)
        for index, (mine, theirs) in enumerate(zip(here, there, strict=True)):
            if known_divergence(case.requests[index]) != known:
                continue
            if mine != theirs:
                found.append(f"{case.name} request {index}:\n  wasmtime {mine[:400]}\n"
                             f"  pyodide  {theirs[:400]}")
    return found


def test_every_public_example_is_byte_identical(run: Run) -> None:
    examples = {case.name for case in example_cases()}
    assert len(examples) >= 11
    assert not mismatches(run, examples), "\n".join(mismatches(run, examples)[:5])
    for case, here in zip(run.cases, run.here, strict=True):
        if case.name in examples:  # the example's own request gives a quote, not an error
            assert not here[0].startswith('{"error"'), (case.name, here[0])


def test_a_100_rule_release_answers_random_requests_byte_identically_as_a_worker(
        run: Run) -> None:
    generated = run.cases[len(example_dirs())]
    assert generated.precompiled
    here = run.here[len(example_dirs())]
    quotes = [text for text in here[:-generated.edge] if not text.startswith('{"error"')]
    assert len(quotes) >= RANDOM_REQUESTS, "the random requests must give quotes, not errors"
    assert not mismatches(run, {generated.name}), "\n".join(mismatches(run, {generated.name})[:5])
    # The same through a runner made by `load_compiled`, as the Worker's entry makes it.
    assert run.there["load_compiled"] == run.there["answers"][len(example_dirs())]
    # The Worker cannot compile at run time: without its precompiled module the load fails.
    assert re.search("InvalidModule: .*does not compile: .*disallowed", run.there["refused"]), \
        run.there["refused"]


def test_small_random_programs_of_every_shape_are_byte_identical(run: Run) -> None:
    names = {case.name for case in run.cases if case.name.startswith("small-")}
    assert len(names) == SMALL_PROGRAMS
    assert not mismatches(run, names), "\n".join(mismatches(run, names)[:5])


def test_bad_and_odd_requests_give_the_same_answers_and_errors(run: Run) -> None:
    for case, here, there in zip(run.cases, run.here, run.there["answers"], strict=True):
        edge = slice(len(case.requests) - case.edge, None)
        errors = 0
        for raw, mine, theirs in zip(case.requests[edge], here[edge], there[edge], strict=True):
            if known_divergence(raw):
                continue
            assert mine == theirs, (case.name, raw[:200], mine, theirs)
            errors += mine.startswith('{"error":{')
        assert errors >= 20 or not case.edge, (case.name, errors)
    # A quantity beyond 64 bits passes the request parser and fails the encoder: a PoP's 503,
    # on both hosts alike.
    assert sum(text == "503 EngineError" for text in run.here[0]) == 1


def test_an_invalid_date_gives_the_same_error(run: Run) -> None:
    assert not mismatches(run, known=True), "\n".join(mismatches(run, known=True)[:2])


@pytest.mark.parametrize("index", range(len(MODULES)), ids=[name for name, *_ in MODULES])
def test_the_js_engine_checks_and_bounds_modules(run: Run, index: int) -> None:
    name, _, _, expected = MODULES[index]
    outcomes = run.there["modules"][index]
    assert len(outcomes) == len(expected), (name, outcomes)
    for outcome, pattern in zip(outcomes, expected, strict=True):
        if pattern.startswith("ok"):
            assert outcome == pattern, name
        else:
            assert re.match(pattern, outcome, re.DOTALL), (name, outcome, pattern)
