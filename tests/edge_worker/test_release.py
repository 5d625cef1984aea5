"""The edge core's release: it refuses bundles that do not check out, survives a runaway
module, and imports with nothing but what Pyodide offers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import wasmtime

from edge_worker.core.engine import EngineError, Runaway
from edge_worker.core.release import Release
from edge_worker.engines.wasmtime_engine import WasmtimeEngine
from poprules import api
from poprules import bundle as fmt
from poprules.codes import normalize_code
from tests.conftest import ROOT, catalog_of, example_dirs
from wasm_build import abi

EXAMPLE = example_dirs()[-1]
PAGES = (abi.IMAGE_BASE // abi.PAGE) + 1
LOOP = bytes(wasmtime.wat2wasm(
    f'(module (memory (export "memory") {PAGES} {PAGES})'
    '(func (export "evaluate") (result i32) (loop $l (br $l)) (i32.const 0)))'
))


@pytest.fixture(scope="module")
def good() -> bytes:
    return api.build(api.load(EXAMPLE / "program.yaml", catalog_of(EXAMPLE)))


def with_module(bundle: bytes, module: bytes) -> bytes:
    parts = fmt.decode(bundle)
    manifest = {k: v for k, v in parts.manifest.items() if k not in ("format", "parts")}
    return fmt.encode(manifest, module, parts.tables, parts.coupons)


def test_a_runaway_module_is_stopped_and_the_pop_keeps_serving(good: bytes) -> None:
    engine = WasmtimeEngine(fuel=5_000_000, use_cache=False)
    looping = Release.load(with_module(good, LOOP), engine)
    healthy = Release.load(good, engine)
    request = (EXAMPLE / "request.json").read_bytes()
    with pytest.raises(Runaway):
        looping.quote(looping.read_request(request))
    with pytest.raises(Runaway):  # the runner recovers and is bounded again
        looping.quote(looping.read_request(request))
    answer = healthy.quote(healthy.read_request(request))
    assert answer["totals"]["payable"] == 4327
    assert answer["release"] == {"program": "corner-market", "hash": healthy.hash}


def test_a_bundle_for_another_abi_is_refused(good: bytes) -> None:
    parts = fmt.decode(good)
    manifest = {k: v for k, v in parts.manifest.items() if k not in ("format", "parts")}
    manifest["abi"] = abi.ABI_VERSION + 1
    other = fmt.encode(manifest, parts.module, parts.tables, parts.coupons)
    with pytest.raises(fmt.BundleError, match="ABI"):
        Release.load(other, WasmtimeEngine(use_cache=False))


def test_a_module_that_is_not_a_rule_module_is_refused(good: bytes) -> None:
    with pytest.raises(EngineError):
        Release.load(with_module(good, b"\x00asm\x01\x00\x00\x00"), WasmtimeEngine(use_cache=False))


def test_the_core_imports_without_wasmtime_yaml_or_the_compiler() -> None:
    blocked = ["wasmtime", "yaml", "click", "nacl", "wasm_build.lang", "wasm_build.reference",
               "wasm_build.plan", "wasm_build.emit", "flask"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import edge_worker.core.release, edge_worker.core.codec, edge_worker.core.engine\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_remembered_coupon_lookups_stay_right_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of made-up codes must neither grow the PoP's memory nor change an answer."""
    program = ROOT / "examples" / "corner-market"
    release = api.load_release(api.build(api.load(program / "rules.yaml",
                                                  program / "catalog.json")))
    monkeypatch.setattr("edge_worker.core.release._REMEMBERED_CODES", 8)
    for n in range(50):
        assert release.coupon_set(f"MADE-UP-{n}") == -1
        assert len(release._coupon_sets) <= 8
    known = release.coupon_set(normalize_code("SUMMER-24"))
    assert known >= 0
    assert release.coupon_set(normalize_code("summer-24")) == known  # now from memory
