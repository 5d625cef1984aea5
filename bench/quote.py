"""`make bench`: how fast a PoP answers, against the yardsticks of issue 4.

One run, the same 50 carts of 20 lines for every engine, against a generated program of 100
rules that mixes every feature of the language:

1. µs per cart end to end (request dict in → quote dict out, in this process) for the compiled
   module, the reference evaluator, and datalogic-py and zen-engine on the rules JSONLogic
   and a JDM graph can express (`bench/jsonlogic.py`, `bench/zen.py` say which), and the
   ratios between them;
2. µs inside the module: the engine call alone, on input words encoded beforehand, and the
   host's steps around it (reading the request, encoding it, decoding the answer);
3. the time to load and check, and to build, a program of 100 and of 1,000 rules, and to load
   the built bundle with and without the compiled-module cache;
4. the time the control plane takes to publish the 1,000-rule program (`bench/publish.py`);
5. a PoP over loopback (issue 6, `bench/pop.py`): quotes/s and latency of `POST /v1/quote`
   under a separate load process, and receipts/s ingested by the control plane;
6. the Cloudflare Worker's runtime in Node-Pyodide (issue 7, `bench/pyodide.py`): CPU per quote,
   cold start, and the upload size of a 1,000-rule release against the free plan's 3 MB;
7. the machine and the command, so a figure can be reproduced.

The compiled module's answers must equal the reference evaluator's on every cart, and every
translated JSONLogic condition the reference evaluator's, before anything is timed: a fast
wrong answer is not a result. An engine that cannot run here is reported as unavailable and the
rest of the benchmark goes on. Results and method: docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datalogic_py

from bench.jsonlogic import DatalogicQuoter, check_conditions
from bench.publish import publish_timings
from bench.zen import ZenQuoter
from bench.zen import check_conditions as check_zen_conditions
from edge_worker.core.codec import Encoded, decode, encode
from edge_worker.core.engine import Engine, Runner
from edge_worker.core.release import Release
from poprules import api
from poprules.codes import normalize_code
from poprules.literals import format_utc
from poprules.request import Request, parse_request
from wasm_build.lang.model import Program
from wasm_build.random_program import (
    CHANNELS,
    CUSTOMER_TAGS,
    FULFILLMENTS,
    POPS,
    TIERS,
    GeneratedProgram,
    generate_program,
)
from wasm_build.reference.quote import quote as reference_quote

CARTS = 50
LINES = 20
RULES = 100
BIG_RULES = 1_000
ITEMS = 2_000  # the catalog size of the load-test program in tests/wasm_build
# Seed 17: USD, Europe/Berlin (DST), a coupon set, every reward form, schedules, caps,
# exclusive and best_of stacking.
DEFAULT_SEED = 17
# Each engine is timed for about this long (at least MIN_ROUNDS rounds over all carts, at
# most MAX_ROUNDS), so the whole benchmark stays well under two minutes on 2 cores.
BUDGET_S = 4.0
MIN_ROUNDS = 5
MAX_ROUNDS = 200
BUILD_REPEATS = 3
LOAD_REPEATS = 20
COLD_LOAD_REPEATS = 3

# --- inputs -------------------------------------------------------------------------------


def write_program(generated: GeneratedProgram, directory: Path) -> tuple[Path, Path]:
    program, catalog = directory / "program.yaml", directory / "catalog.json"
    program.write_text(generated.program_yaml, encoding="utf-8")
    catalog.write_text(generated.catalog_json, encoding="utf-8")
    return program, catalog


def make_carts(generated: GeneratedProgram, seed: int) -> list[dict[str, Any]]:
    """50 different carts of exactly 20 lines (distinct skus), with the order and customer
    fields and the instants that the program's conditions and schedules look at."""
    rng = random.Random(f"bench/carts/{seed}")
    vocabulary = generated.vocabulary
    carts = []
    for _ in range(CARTS):
        cart: dict[str, Any] = {
            "lines": [{"sku": sku, "qty": rng.choice((1, 1, 1, 2, 2, 3, 4, 6))}
                      for sku in rng.sample(vocabulary.skus, LINES)],
            "channel": rng.choice(CHANNELS),
            "fulfillment": rng.choice(FULFILLMENTS),
            "pop": rng.choice(POPS),
            "prefer": rng.choice(("wallet", "instant")),
            "at": format_utc(vocabulary.anchor + rng.choice((0, 0, 59, -3600, 3600, 86_400))),
        }
        if vocabulary.codes and rng.random() < 0.6:
            cart["coupons"] = [rng.choice(vocabulary.codes), "NOPE-1"][:rng.randint(1, 2)]
        if rng.random() < 0.75:
            cart["customer"] = {"tier": rng.choice(TIERS), "orders": rng.choice((0, 1, 5, 40)),
                                "tags": rng.sample(CUSTOMER_TAGS, rng.randint(0, 2)),
                                "referred": rng.random() < 0.5}
        carts.append(cart)
    return carts


# --- timing ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    median_us: float
    p90_us: float
    samples: int


def time_per_cart(call: Callable[[Any], Any], inputs: Sequence[Any]) -> Timing:
    """Median and p90 over every (round, input) sample, after a warm-up round that also sizes
    the number of rounds to the time budget. The collector is off while timing, so a pause
    it would take at a random cart does not land in one engine's figures."""
    start = time.perf_counter()
    for one in inputs:
        call(one)
    warm_up = time.perf_counter() - start
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(BUDGET_S / max(warm_up, 1e-9))))
    samples: list[int] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for one in inputs:
                t0 = clock()
                call(one)
                samples.append(clock() - t0)
    finally:
        gc.enable()
    return _summary(samples)


def time_calls(call: Callable[[], Any], repeats: int) -> Timing:
    """Median and p90 of a whole operation (a build, a load), each run once per repeat."""
    samples = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t0)
    return _summary(samples)


def _summary(samples_ns: Sequence[int]) -> Timing:
    ordered = sorted(samples_ns)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return Timing(statistics.median(ordered) / 1000, p90 / 1000, len(ordered))


# --- engines --------------------------------------------------------------------------------


class _Recorder:
    """A runner that remembers the arguments of its calls: how the benchmark gets the exact
    input words and read size `Release.quote` uses, to time the engine call alone."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.calls: list[tuple[Sequence[int], int]] = []

    def run(self, words: Sequence[int], read: int = 0) -> tuple[int, Sequence[int]]:
        self.calls.append((words, read))
        return self.runner.run(words, read)

    def read(self, start: int, count: int) -> Sequence[int]:
        return self.runner.read(start, count)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".rstrip(": ")


def wasm_engine(cache_dir: Path) -> Engine:
    """A wasmtime engine whose compiled-module cache is the benchmark's own directory
    (imported here so that a broken adapter makes the module unavailable, not the run)."""
    from edge_worker.engines.wasmtime_engine import WasmtimeEngine

    return WasmtimeEngine(cache_dir=cache_dir)


def checked_release(program: Program, carts: Sequence[dict[str, Any]],
                    read: Callable[[dict[str, Any]], Request], cache_dir: Path,
                    label: str) -> Release | str:
    """The program's release, after its answers were compared with the reference evaluator's
    on every cart; or why the module is unavailable."""
    try:
        release = api.load_release(api.build(program), wasm_engine(cache_dir))
        answers = [release.quote(release.read_request(cart), with_release=False)
                   for cart in carts]
    except Exception as error:  # noqa: BLE001 - any failure of the module is reported, not fatal
        print(f"wasm: unavailable ({_reason(error)})")
        return _reason(error)
    differ = sum(answer != reference_quote(program, read(cart))
                 for answer, cart in zip(answers, carts, strict=True))
    print(f"check: {label}: wasm and python answers equal on {len(carts) - differ} of "
          f"{len(carts)} carts")
    if differ:
        print(f"WARNING: the module disagrees with the reference evaluator on {differ} carts; "
              "its timings are of wrong answers")
    return release


def time_release(release: Release | str, carts: Sequence[dict[str, Any]]) -> Timing | str:
    if isinstance(release, str):
        return f"unavailable ({release})"
    return time_per_cart(lambda cart: release.quote(release.read_request(cart),
                                                    with_release=False), carts)


# --- report ---------------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("cpu", cpu),
        ("cores", f"{usable} usable of {os.cpu_count()}"),
        ("os", platform.platform()),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("wasmtime", importlib.metadata.version("wasmtime")),
        ("datalogic-py", datalogic_py.__version__),
        ("zen-engine", importlib.metadata.version("zen-engine")),
        ("command", " ".join(sys.orig_argv)),
    ]


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 10_000 else f"{value / 1000:,.1f} ms"


def _row(name: str, timing: Timing | str) -> str:
    if isinstance(timing, str):
        return f"  {name:<34} {timing}"
    return (f"  {name:<34} median {_us(timing.median_us):>11}   p90 {_us(timing.p90_us):>11}"
            f"   ({timing.samples:,} samples)")


# --- the benchmark --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quote", description=__doc__.split(
        "\n", 1)[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the generated programs and carts (default {DEFAULT_SEED})")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    print("poprules benchmark (issue 4): the compiled module against its yardsticks")
    for key, value in machine():
        print(f"  {key:<13} {value}")

    with tempfile.TemporaryDirectory(prefix="poprules-bench-") as scratch:
        root = Path(scratch)
        generated = generate_program(args.seed, rules=RULES, items=ITEMS)
        (root / "p100").mkdir()
        program = api.load(*write_program(generated, root / "p100"))
        carts = make_carts(generated, args.seed)
        zone, skus = program.zone, program.catalog.by_sku
        print(f"\nprogram: seed {args.seed}, {len(program.rules)} rules, "
              f"{len(program.catalog.items):,} items, {program.currency}, {program.timezone}, "
              f"{program.rounding.value}; {len(carts)} carts of {LINES} lines")

        def read(cart: dict[str, Any]) -> Request:
            return parse_request(cart, skus=skus, zone=zone)

        results = end_to_end(program, carts, read, root / "cache")
        inside = inside_module(results.release, carts)
        sizes = build_and_load(generated, args.seed, root)
        big = generate_program(args.seed, rules=BIG_RULES, items=ITEMS)
        publishing = publish_timings(big, make_carts(big, args.seed))

    print("\n1. per cart, end to end (request dict in → quote dict out)")
    n = results.translated
    print(_row("wasm module", results.wasm))
    print(_row("python reference", results.python))
    print(_row(f"datalogic-py ({n} rules)", results.datalogic))
    print(_row(f"zen-engine ({results.zen_translated} rules)", results.zen))
    print(_row(f"wasm module (the same {n} rules)", results.wasm_subset))
    zen_subset = results.wasm_subset if results.zen_translated == n else "other rules"
    for name, slow, fast in (("python reference / wasm module", results.python, results.wasm),
                             ("datalogic-py / wasm module", results.datalogic, results.wasm),
                             (f"datalogic-py / wasm module, both on the {n} rules",
                              results.datalogic, results.wasm_subset),
                             ("zen-engine / wasm module", results.zen, results.wasm),
                             (f"zen-engine / wasm module, both on the {n} rules",
                              results.zen, zen_subset),
                             ("zen-engine / datalogic-py", results.zen, results.datalogic)):
        if isinstance(slow, Timing) and isinstance(fast, Timing):
            print(f"  ratio {name}: {slow.median_us / fast.median_us:,.1f}×")
    print("\n2. inside the module, and the host's steps around it")
    for name, timing in inside.items():
        print(_row(name, timing))
    print("\n3. bundles")
    for line in sizes:
        print(line)
    print(f"\n4. control plane: publishing a {BIG_RULES:,}-rule program (SQLite, in process)")
    for name, seconds in publishing:
        print(_row(name, _summary([round(s * 1e9) for s in seconds])))
    from bench.pop import pop_figures  # here: bench.pop takes its carts and rows from this module

    print("\n5. PoP over loopback (issue 6)")
    for line in pop_figures(args.seed):
        print(line)
    from bench.pyodide import pyodide_figures  # here: it takes its carts from this module

    print("\n6. Cloudflare worker in Node-Pyodide (issue 7)")
    for line in pyodide_figures(args.seed):
        print(line)
    print(f"\ntotal {time.perf_counter() - began:,.1f} s")
    return 0


@dataclasses.dataclass
class EndToEnd:
    wasm: Timing | str
    python: Timing | str
    datalogic: Timing | str
    wasm_subset: Timing | str  # the module on only the rules datalogic runs
    translated: int
    zen: Timing | str
    zen_translated: int  # the same rules as datalogic's unless a string literal stops ZEN
    release: Release | None


def end_to_end(program: Program, carts: list[dict[str, Any]],
               read: Callable[[dict[str, Any]], Request], cache_dir: Path) -> EndToEnd:
    release = checked_release(program, carts, read, cache_dir, "all rules")
    wasm = time_release(release, carts)
    python = time_per_cart(lambda cart: reference_quote(program, read(cart)), carts)

    quoter = DatalogicQuoter(program)
    translation = quoter.translation
    checks, wrong = check_conditions(quoter, [read(cart) for cart in carts])
    subset = translation.phase1 + translation.phase2
    skipped = ", ".join(f"{n} {reason}" for reason, n in translation.skipped.items())
    print(f"datalogic: {len(subset)} of {len(program.rules)} rules translated "
          f"({len(translation.phase1)} discounts, {len(translation.phase2)} cashback); "
          f"skipped: {skipped}")
    print(f"check: translated conditions agree with the reference evaluator on "
          f"{checks - wrong:,} of {checks:,} rule gates and line tests")
    if wrong:
        print(f"WARNING: {wrong:,} translated conditions disagree; the datalogic timing is of "
              "a wrong translation")
    datalogic = time_per_cart(lambda cart: quoter.quote(read(cart)), carts)
    zen, zen_translated = time_zen(program, quoter, carts, read)

    # The same rules, in file order, as a program of their own: how much of the module's
    # lead comes from running every rule rather than the subset JSONLogic can say.
    only = dataclasses.replace(program, rules=tuple(sorted(subset, key=lambda r: r.index)))
    subset_release = checked_release(only, carts, read, cache_dir, "translated rules only")
    return EndToEnd(wasm, python, datalogic, time_release(subset_release, carts), len(subset),
                    zen, zen_translated, None if isinstance(release, str) else release)


def time_zen(program: Program, host: DatalogicQuoter, carts: list[dict[str, Any]],
             read: Callable[[dict[str, Any]], Request]) -> tuple[Timing | str, int]:
    """zen-engine on its translation (`bench/zen.py`), checked like datalogic's; or why it is
    unavailable."""
    try:
        quoter = ZenQuoter(program, host)
        checks, wrong = check_zen_conditions(quoter, [read(cart) for cart in carts])
    except Exception as error:  # noqa: BLE001 - an engine that cannot run is reported
        print(f"zen: unavailable ({_reason(error)})")
        return f"unavailable ({_reason(error)})", 0
    translation = quoter.translation
    translated = len(translation.phase1) + len(translation.phase2)
    skipped = ", ".join(f"{n} {reason}" for reason, n in translation.skipped.items())
    print(f"zen: {translated} of {len(program.rules)} rules translated to a JDM graph; "
          f"skipped: {skipped}")
    print(f"check: zen's conditions agree with the reference evaluator on "
          f"{checks - wrong:,} of {checks:,} rule gates and line tests")
    if wrong:
        print(f"WARNING: {wrong:,} zen conditions disagree; its timing is of a wrong translation")
    same = sum(quoter.quote(read(cart)) == host.quote(read(cart)) for cart in carts)
    print(f"check: zen's figures equal datalogic's on {same} of {len(carts)} carts")
    return time_per_cart(lambda cart: quoter.quote(read(cart)), carts), translated


def inside_module(release: Release | None,
                  carts: list[dict[str, Any]]) -> dict[str, Timing | str]:
    """The engine call alone, with the words and read size `Release.quote` passes it (a
    recording runner captures them), and the host's steps around it, each timed on its own:
    reading the request, encoding it, decoding the answer."""
    if release is None:
        return {"engine call (runner.run)": "unavailable"}
    recorder = _Recorder(release.runner)
    recording = dataclasses.replace(release, runner=recorder)
    runner, tables = release.runner, release.tables

    def encode_one(request: Request) -> Encoded:
        spent = {normalize_code(c) for c in request.spent_coupons}  # as Release.quote does
        return encode(request, tables, release.coupon_set, spent.__contains__)

    requests = [release.read_request(cart) for cart in carts]
    for request in requests:
        recording.quote(request, with_release=False)
    steps = [(request, encode_one(request), runner.run(words, read)[1])
             for request, (words, read) in zip(requests, recorder.calls, strict=True)]
    return {
        "read the request": time_per_cart(release.read_request, carts),
        "encode (codec.encode)": time_per_cart(encode_one, requests),
        "engine call (runner.run)": time_per_cart(
            lambda call: runner.run(call[0], read=call[1]), recorder.calls),
        "decode (codec.decode)": time_per_cart(
            lambda step: decode(step[2], step[0], step[1], tables), steps),
    }


def build_and_load(generated: GeneratedProgram, seed: int, root: Path) -> list[str]:
    """Load+check, build and bundle-load times for the 100-rule program and a 1,000-rule one."""
    big = generate_program(seed, rules=BIG_RULES, items=ITEMS)
    return [*build_figures(f"{RULES} rules", generated, root / "build-small"),
            *build_figures(f"{BIG_RULES:,} rules", big, root / "build-big")]


def build_figures(name: str, source: GeneratedProgram, directory: Path) -> list[str]:
    directory.mkdir()
    paths = write_program(source, directory)
    loaded: list[Program] = []
    load_check = time_calls(lambda: loaded.append(api.load(*paths)), BUILD_REPEATS)
    lines = [_row(f"{name}: load + check", load_check)]
    built: list[bytes] = []
    try:
        build = time_calls(lambda: built.append(api.build(loaded[0])), BUILD_REPEATS)
    except Exception as error:  # noqa: BLE001 - reported, and the benchmark goes on
        return [*lines, _row(f"{name}: build", f"unavailable ({_reason(error)})")]
    lines.append(_row(f"{name}: build", build))
    if len(set(built)) != 1:
        lines.append("  WARNING: the same program built to different bundles")
    lines.append(f"  {name}: bundle {len(built[0]):,} bytes")
    return lines + bundle_loads(name, built[0], directory)


def bundle_loads(name: str, bundle: bytes, directory: Path) -> list[str]:
    """`api.load_release` with the compiled module in the cache (warm) and without (cold:
    a fresh cache directory, so the module is compiled and the cache written)."""
    try:
        warm_engine = wasm_engine(directory / "warm")
        api.load_release(bundle, warm_engine)  # fills the cache
        warm = time_calls(lambda: api.load_release(bundle, warm_engine), LOAD_REPEATS)
        engines = [wasm_engine(directory / f"cold-{n}") for n in range(COLD_LOAD_REPEATS)]
        cold = time_calls(lambda: api.load_release(bundle, engines.pop()), COLD_LOAD_REPEATS)
    except Exception as error:  # noqa: BLE001 - reported, and the benchmark goes on
        return [_row(f"{name}: bundle load", f"unavailable ({_reason(error)})")]
    return [_row(f"{name}: bundle load, warm cache", warm),
            _row(f"{name}: bundle load, cold cache", cold)]


if __name__ == "__main__":
    raise SystemExit(main())
