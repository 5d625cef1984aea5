"""Runs under Node-Pyodide for bench/pyodide.py (through tests/edge_worker/pyodide/run.mjs):

    run.mjs --mount DIR:/bench bench/pyodide_driver.py /bench

DIR holds bundle-100.bin, bundle-1000.bin and carts.json (the benchmark's 50 carts of 20
lines); the driver writes DIR/figures.json: every time in µs, lists of samples where a median
is wanted. Only the standard library, the copied core and the vendored wheels are importable
here, as in a Worker.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_worker.core.release import Release

LOAD_REPEATS = 10
QUOTE_BUDGET_S = 3.0
MIN_ROUNDS = 5


def _us(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - t0) / 1000


def load_steps(data: bytes) -> dict[str, list[float]]:
    """The steps of `Release.load`, each timed on its own: decode + check the bundle (hashes,
    manifest), the host tables, compiling rules.wasm (a Worker never does: the module is
    uploaded compiled) and instantiating it with the adapter's checks."""
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    from edge_worker.core.codec import Tables
    from edge_worker.core.release import Release
    from edge_worker.engines.js_engine import JsEngine
    from poprules import bundle as fmt
    from poprules.zone import TableZone

    steps: dict[str, list[float]] = {"decode": [], "tables": [], "compile": [],
                                     "instantiate": [], "release_load": []}
    engine = JsEngine()
    for _ in range(LOAD_REPEATS):
        gc.collect()
        t0 = time.perf_counter_ns()
        bundle = fmt.decode(data)
        t1 = time.perf_counter_ns()
        Tables.of(bundle.tables)
        TableZone(bundle.tables["timezone"], [tuple(t) for t in bundle.tables["zone"]])
        t2 = time.perf_counter_ns()
        compiled = js.WebAssembly.Module.new(to_js(bundle.module))
        t3 = time.perf_counter_ns()
        engine.load_compiled(compiled)
        t4 = time.perf_counter_ns()
        for name, start, end in (("decode", t0, t1), ("tables", t1, t2), ("compile", t2, t3),
                                 ("instantiate", t3, t4)):
            steps[name].append((end - start) / 1000)
        steps["release_load"].append(_us(lambda: Release.load(data, engine)))
    return steps


def quote_times(release: Release, carts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per 20-line cart: `Release.quote` alone (wall time of each call), and the whole request
    as a Worker handles it (raw bytes → read_request → quote → JSON text); plus the process's
    CPU time per quote over whole rounds (Node's process.cpuUsage: user + system)."""
    import js

    raws = [json.dumps(cart).encode() for cart in carts]
    requests = [release.read_request(raw) for raw in raws]
    first_quote = _us(lambda: release.quote(requests[0]))

    def whole(raw: bytes) -> str:
        return json.dumps(release.quote(release.read_request(raw)), separators=(",", ":"),
                          ensure_ascii=False)

    clock = time.perf_counter_ns
    t0 = clock()
    for request in requests:
        release.quote(request)
    warm = (clock() - t0) / 1e9
    rounds = max(MIN_ROUNDS, int(QUOTE_BUDGET_S / 2 / max(warm, 1e-6)))
    quote_us: list[float] = []
    whole_us: list[float] = []
    gc.collect()
    gc.disable()
    try:
        cpu0 = js.process.cpuUsage()
        for _ in range(rounds):
            for request in requests:
                t0 = clock()
                release.quote(request)
                quote_us.append((clock() - t0) / 1000)
        cpu1 = js.process.cpuUsage(cpu0)
        for _ in range(rounds):
            for raw in raws:
                t0 = clock()
                whole(raw)
                whole_us.append((clock() - t0) / 1000)
    finally:
        gc.enable()
    cpu_us = (cpu1.user + cpu1.system) / len(quote_us)
    return {"quote": quote_us, "whole": whole_us, "cpu_per_quote": cpu_us,
            "first_quote": first_quote, "rounds": rounds, "carts": len(carts)}


def main(directory: str) -> None:
    began = time.perf_counter()
    from edge_worker.core import pop  # noqa: F401 - what a Worker imports, timed
    from edge_worker.core.release import Release
    from edge_worker.engines.js_engine import JsEngine

    import_us = (time.perf_counter() - began) * 1e6
    import js

    with open(f"{directory}/carts.json", encoding="utf-8") as file:
        carts = json.load(file)
    figures: dict[str, Any] = {"import": import_us, "harness": js.poprulesHarness.timings.to_py(),
                               "python": sys.version.split()[0]}
    for rules in (100, 1000):
        with open(f"{directory}/bundle-{rules}.bin", "rb") as file:
            data = file.read()
        figures[f"load_{rules}"] = load_steps(data)
    with open(f"{directory}/bundle-100.bin", "rb") as file:
        release = Release.load(file.read(), JsEngine())
    figures["quotes"] = quote_times(release, carts)
    with open(f"{directory}/figures.json", "w", encoding="utf-8") as file:
        json.dump(figures, file)


if __name__ == "__main__":
    main(sys.argv[1])
