"""Issue 7's figures: the Cloudflare Worker's runtime, measured in Node-Pyodide.

Pyodide 314.0.6 (Python 3.14, what workerd bundles) in Node, from the toolchain of
scripts/edge_toolchain.sh, running bench/pyodide_driver.py through the parity harness
(tests/edge_worker/pyodide/run.mjs), so exactly the files a Worker ships are importable.

1. CPU per quote: the benchmark's 50 carts of 20 lines against its 100-rule program (seed 17):
   `Release.quote` on a parsed request (median wall time per call, and Node's
   process.cpuUsage over whole rounds divided by the quotes), and the whole request as a
   Worker handles it (raw bytes → read_request → quote → JSON text). Target ≤ 1 ms, inside
   the free plan's 10 ms of CPU per request.
2. Cold start: loading Pyodide, the vendored wheels and the core's import (what a Worker's
   memory snapshot restores instead of running), then `Release.load` of the 100- and
   1,000-rule bundles split into its steps. A Worker version runs decode + check at deploy,
   into its snapshot; the compile happens at upload (rules.wasm is a CompiledWasm module);
   instantiating the module is JS state outside Python's heap, so it is paid once per
   isolate, not per request.
3. Upload size of a 1,000-rule / 10,000-SKU release (generate_program(seed, rules=1000,
   items=10000)): gzip (level 9, what a Worker upload is compressed with, to within a few %)
   of the files the Worker ships: rules.wasm, the bundle (it carries the module too; the
   Worker checks it against the release signature), the Python core and the msgpack wheel's
   files; against the 3 MB free-plan limit (10 MB paid).
"""

from __future__ import annotations

import gzip
import json
import statistics
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.quote import ITEMS, RULES, make_carts
from poprules import api
from poprules.bundle import decode
from tests.edge_worker.pyodide.harness import EDGE, ROOT, run_pyodide
from wasm_build.random_program import GeneratedProgram, generate_program

DRIVER = Path(__file__).with_name("pyodide_driver.py")
BIG_RULES, BIG_ITEMS = 1_000, 10_000
FREE_PLAN_BYTES = 3 * 1000 * 1000  # Cloudflare's "3 MB" (the stricter reading of MB)
# What a Worker ships of the repository (run.mjs copies the same into Pyodide).
CORE = ("poprules", "wasm_build/__init__.py", "wasm_build/abi.py", "edge_worker/__init__.py",
        "edge_worker/core", "edge_worker/engines/__init__.py",
        "edge_worker/engines/js_engine.py", "edge_worker/cloudflare")
LEFT_OUT = ("edge_worker/cloudflare/build.py",)  # builds the Worker; not part of it


def _bundle(generated: GeneratedProgram, directory: Path) -> bytes:
    program, catalog = directory / "program.yaml", directory / "catalog.json"
    program.write_text(generated.program_yaml, encoding="utf-8")
    catalog.write_text(generated.catalog_json, encoding="utf-8")
    return api.build(api.load(program, catalog))


def _core_files() -> list[Path]:
    files: list[Path] = []
    for part in CORE:
        path = ROOT / part
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if p.is_file() and "__pycache__" not in p.parts
                            and str(p.relative_to(ROOT)) not in LEFT_OUT)
        elif path.exists():
            files.append(path)
    return files


def upload_size(bundle: bytes) -> list[tuple[str, int, int]]:
    """(what, bytes, gzip bytes) of each part of the Worker's upload, then the total."""
    wasm = decode(bundle).module
    core = b"".join(path.read_bytes() for path in _core_files())
    wheel_files = b""
    for wheel in sorted((EDGE / "wheels").glob("msgpack-*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            wheel_files += b"".join(archive.read(name) for name in archive.namelist()
                                    if not name.endswith("/"))
    parts = [("rules.wasm", wasm), ("bundle", bundle), ("Python core", core),
             ("msgpack (Pyodide wheel)", wheel_files)]
    rows = [(name, len(data), len(gzip.compress(data, 9))) for name, data in parts]
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    return rows


def _median(samples: Sequence[float]) -> str:
    return _fmt(statistics.median(samples))


def _fmt(us: float) -> str:
    return f"{us:,.1f} µs" if us < 10_000 else f"{us / 1000:,.1f} ms"


def pyodide_figures(seed: int) -> list[str]:
    """The lines of the benchmark's section 6."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="poprules-bench-pyodide-") as name:
        work = Path(name)
        generated = generate_program(seed, rules=RULES, items=ITEMS)
        (work / "small").mkdir()
        (work / "bundle-100.bin").write_bytes(_bundle(generated, work / "small"))
        (work / "big").mkdir()
        big = _bundle(generate_program(seed, rules=BIG_RULES, items=BIG_ITEMS), work / "big")
        (work / "bundle-1000.bin").write_bytes(big)
        (work / "carts.json").write_text(json.dumps(make_carts(generated, seed)))
        started = time.perf_counter()
        run_pyodide(DRIVER, "/bench", mounts={work: "/bench"})
        node_s = time.perf_counter() - started
        figures: dict[str, Any] = json.loads((work / "figures.json").read_text())
    quotes = figures["quotes"]
    harness = figures["harness"]
    lines = [
        (f"  Pyodide {_pyodide_version()} (Python {figures['python']}) in Node; "
         f"{quotes['carts']} carts of 20 lines × {quotes['rounds']} rounds, {RULES} rules"),
        (f"  CPU per quote (Release.quote)      median {_median(quotes['quote'])}   "
         f"p90 {_fmt(_p90(quotes['quote']))}   process CPU {_fmt(quotes['cpu_per_quote'])} "
         "per quote (target ≤ 1 ms)"),
        (f"  whole request (bytes → JSON text)  median {_median(quotes['whole'])}   "
         f"p90 {_fmt(_p90(quotes['whole']))}"),
        f"  first quote after load             {_fmt(quotes['first_quote'])}",
        "  cold start (what a Worker's snapshot restores instead of running):",
        f"    load Pyodide                     {_fmt(harness['pyodide'] * 1000)}",
        f"    load the vendored wheels         {_fmt(harness['wheels'] * 1000)}",
        f"    import the core                  {_fmt(figures['import'])}",
    ]
    for rules in (RULES, BIG_RULES):
        steps = figures[f"load_{rules}"]
        lines.append(
            f"  Release.load, {rules:,} rules: {_median(steps['release_load'])} = decode+check "
            f"{_median(steps['decode'])} + tables {_median(steps['tables'])} + compile "
            f"{_median(steps['compile'])} (at upload in a Worker) + instantiate "
            f"{_median(steps['instantiate'])}")
    lines.append(f"  upload of a {BIG_RULES:,}-rule / {BIG_ITEMS:,}-SKU release "
                 f"(gzip -9, limit {FREE_PLAN_BYTES / 1e6:.0f} MB on the free plan):")
    sizes = upload_size(big)
    for what, size, packed in sizes:
        lines.append(f"    {what:<30} {size / 1e6:7.3f} MB   gzip {packed / 1e6:7.3f} MB")
    total = sizes[-1][2]
    lines.append(f"    {'fits' if total <= FREE_PLAN_BYTES else 'DOES NOT FIT'} the free plan: "
                 f"{100 * total / FREE_PLAN_BYTES:.0f} % of {FREE_PLAN_BYTES / 1e6:.0f} MB")
    lines.append(f"  (Node process {node_s:,.1f} s; section {time.perf_counter() - began:,.1f} s)")
    return lines


def _p90(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _pyodide_version() -> str:
    package = json.loads((EDGE / "node_modules" / "pyodide" / "package.json").read_text())
    return str(package["version"])
