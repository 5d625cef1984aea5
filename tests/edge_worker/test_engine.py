"""The engine interface and its wasmtime adapter, driven by small hand-written modules.

Each behaviour is checked on both call paths (the private unchecked call and the public
fallback), since a wasmtime upgrade can silently switch a PoP from one to the other.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import tempfile
import threading
import zlib
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import wasmtime

from edge_worker.core.engine import EngineError, InvalidModule, Runaway, Runner
from edge_worker.engines import wasmtime_engine
from edge_worker.engines.wasmtime_engine import WasmtimeEngine
from tests.conftest import ROOT
from wasm_build import abi

IN, OUT = abi.INPUT_BASE, abi.OUTPUT_BASE
PAGES = (abi.OUTPUT_BASE + 8 * abi.OUTPUT_WORDS) // abi.PAGE + 1
MEMORY = f'(memory (export "memory") {PAGES} {PAGES})'


def module(body: str, *, memory: str = MEMORY, extra: str = "") -> bytes:
    return bytes(wasmtime.wat2wasm(
        f'(module {extra} {memory} (func (export "evaluate") (result i32) {body}))'
    ))


# Copies the whole input area to the output area; returns the first input word as i32.
COPY = module(f"""
    (memory.copy (i32.const {OUT}) (i32.const {IN}) (i32.const {8 * abi.INPUT_WORDS}))
    (i32.wrap_i64 (i64.load (i32.const {IN})))""")

# Counts down from the first input word (-1: practically forever), then writes 42.
COUNTDOWN = module(f"""
    (local $i i64)
    (local.set $i (i64.load (i32.const {IN})))
    (block $done (loop $again
        (br_if $done (i64.eqz (local.get $i)))
        (local.set $i (i64.sub (local.get $i) (i64.const 1)))
        (br $again)))
    (i64.store (i32.const {OUT}) (i64.const 42))
    (i32.const 0)""")

# Writes how many calls its instance has served; traps when the first input word is not 0.
COUNTER = module(f"""
    (if (i64.ne (i64.load (i32.const {IN})) (i64.const 0)) (then unreachable))
    (global.set $calls (i64.add (global.get $calls) (i64.const 1)))
    (i64.store (i32.const {OUT}) (global.get $calls))
    (i32.const 0)""", extra="(global $calls (mut i64) (i64.const 0))")

# Tries to grow its memory; writes memory.grow's answer and the size afterwards.
GROW = module(f"""
    (i64.store (i32.const {OUT}) (i64.extend_i32_s (memory.grow (i32.const 1))))
    (i64.store (i32.const {OUT + 8}) (i64.extend_i32_u (memory.size)))
    (i32.const 0)""")


@pytest.fixture(params=[True, False], ids=["unchecked-call", "public-call"])
def engine(request: pytest.FixtureRequest) -> WasmtimeEngine:
    return WasmtimeEngine(fuel=10_000_000, use_cache=False, fast_calls=request.param)


def test_the_fast_path_matches_the_pinned_wasmtime() -> None:
    assert wasmtime_engine.FAST_CALL_UNAVAILABLE is None, wasmtime_engine.FAST_CALL_UNAVAILABLE
    pin = re.search(r'"wasmtime == ([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None, "pyproject.toml must pin wasmtime: the fast path uses private API"
    assert pin.group(1) == wasmtime_engine.WASMTIME_VERSION, (
        f"wasmtime {wasmtime_engine.WASMTIME_VERSION} is installed but the fast path was "
        f"checked against {pin.group(1)}: re-check it, then move the pin"
    )


def test_the_core_interface_imports_without_wasmtime() -> None:
    code = "import sys; sys.modules['wasmtime'] = None; import edge_worker.core.engine"
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_words_round_trip(engine: WasmtimeEngine) -> None:
    runner: Runner = engine.load(COPY)
    words = [7, 0, -1, 1, 2**63 - 1, -(2**63), abi.NONE, 123_456_789_012] + list(range(-150, 150))
    status, out = runner.run(words, read=len(words))
    assert status == 7
    assert list(out) == words
    assert list(runner.read(300, 8)) == words[300:]
    assert list(runner.run(array("q", words[::-1]), read=3)[1]) == words[:-4:-1]
    assert runner.run([-3])[0] == -3  # the i32 result keeps its sign
    assert list(runner.run([5])[1]) == []


def test_host_misuse_is_an_engine_error(engine: WasmtimeEngine) -> None:
    runner = engine.load(COPY)
    with pytest.raises(EngineError, match="input area"):
        runner.run([0] * (abi.INPUT_WORDS + 1))
    with pytest.raises(EngineError, match="not a signed 64-bit integer"):
        runner.run([2**63])
    with pytest.raises(EngineError, match="no evaluation to read"):
        runner.read(0, 1)  # the failed run left nothing to read
    runner.run([1, 2])
    assert list(runner.read(0, 2)) == [1, 2]
    with pytest.raises(EngineError, match="outside the output area"):
        runner.read(abi.OUTPUT_WORDS - 1, 2)
    with pytest.raises(EngineError, match="output area"):
        runner.run([1], read=abi.OUTPUT_WORDS + 1)


def test_a_runaway_module_is_stopped_and_the_next_call_works(engine: WasmtimeEngine) -> None:
    runner = engine.load(COUNTDOWN)
    with pytest.raises(Runaway, match="ran out of fuel") as stopped:
        runner.run([-1])
    assert stopped.value.fuel == 10_000_000
    assert list(runner.run([0], read=1)[1]) == [42]


def test_fuel_is_a_bound_per_call_not_per_instance(engine: WasmtimeEngine) -> None:
    runner = engine.load(COUNTDOWN)
    for _ in range(30):  # together far more than one call's fuel
        assert list(runner.run([100_000], read=1)[1]) == [42]


def test_a_trap_is_an_engine_error_and_discards_the_instance(engine: WasmtimeEngine) -> None:
    runner = engine.load(COUNTER)
    assert [runner.run([0], read=1)[1][0] for _ in range(2)] == [1, 2]
    with pytest.raises(EngineError, match="trapped.*unreachable") as trapped:
        runner.run([1])
    assert not isinstance(trapped.value, Runaway)
    assert runner.run([0], read=1)[1][0] == 1  # a fresh instance


def test_memory_cannot_grow(engine: WasmtimeEngine) -> None:
    assert list(engine.load(GROW).run([], read=2)[1]) == [-1, PAGES]


@pytest.mark.parametrize(("wasm", "message"), [
    (module("(i32.const 0)", extra='(import "env" "now" (func (result i64)))'),
     "imports env.now: a rule module must import nothing"),
    (module("(i32.const 0)", memory=f'(memory (export "memory") {PAGES})'),
     f"min = max pages so it can never grow \\(min {PAGES}, max none\\)"),
    (module("(i32.const 0)", memory=f'(memory (export "memory") {PAGES} {PAGES + 1})'),
     "min = max pages"),
    (module("(i32.const 0)", memory='(memory (export "memory") 1 1)'),
     "does not hold the ABI's input and output areas"),
    (module("(i32.const 0)", memory='(memory (export "memory") 5000 5000)'),
     "exceeds this engine's limit"),
    (module("(i32.const 0)", memory=f"(memory {PAGES} {PAGES})"), "export its memory as `memory`"),
    (bytes(wasmtime.wat2wasm(f'(module {MEMORY} (func (export "evaluate") (param i32) '
                             '(result i32) (i32.const 0)))')), "`evaluate` of type \\(\\) -> i32"),
    (bytes(wasmtime.wat2wasm(f"(module {MEMORY})")), "`evaluate` of type"),
    (module("(i32.const 0)", extra=f'(data (i32.const {PAGES * abi.PAGE}) "x")'),
     "trapped while starting: .*out of bounds"),
    (b"\0asm\1\0\0\0\xff", "does not compile"),
    (b"(module)", "not a WebAssembly binary"),
])
def test_unfit_modules_are_refused(wasm: bytes, message: str) -> None:
    with pytest.raises(InvalidModule, match=message):
        WasmtimeEngine(use_cache=False).load(wasm)


def test_a_start_function_that_loops_is_refused_at_load() -> None:
    spin = bytes(wasmtime.wat2wasm(f'(module {MEMORY} (func $spin (loop $l (br $l))) (start $spin)'
                                   '(func (export "evaluate") (result i32) (i32.const 0)))'))
    with pytest.raises(InvalidModule, match="ran out of fuel"):
        WasmtimeEngine(fuel=1_000_000, use_cache=False).load(spin)


def test_each_thread_has_its_own_instance(engine: WasmtimeEngine) -> None:
    counter, copy = engine.load(COUNTER), engine.load(COPY)
    assert counter.run([0], read=1)[1][0] == 1
    start = threading.Barrier(4)

    def work(tag: int) -> tuple[list[int], bool]:
        start.wait()
        counts = [counter.run([0], read=1)[1][0] for _ in range(50)]
        words = [tag] * 200
        intact = all(list(copy.run(words, read=1)[1]) + list(copy.read(1, 199)) == words
                     for _ in range(50))
        return counts, intact

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    assert results == [(list(range(1, 51)), True)] * 4
    assert counter.run([0], read=1)[1][0] == 2  # the loading thread's instance, untouched


def cached_files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _refuse_to_compile(*args: object) -> None:
    raise AssertionError("compiled the module instead of loading it from the cache")


def test_a_compiled_module_is_cached_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    WasmtimeEngine(cache_dir=tmp_path).load(COPY)
    (cached,) = cached_files(tmp_path)
    assert cached.name.startswith(hashlib.sha256(COPY).hexdigest())
    assert wasmtime_engine.WASMTIME_VERSION in cached.name
    monkeypatch.setattr(wasmtime.Module, "__init__", _refuse_to_compile)
    assert list(WasmtimeEngine(cache_dir=tmp_path).load(COPY).run([9], read=1)[1]) == [9]


def _valid_trailer_over_garbage(data: bytes) -> bytes:
    garbage = b"\x7fELF" + bytes(range(256)) * 8
    return garbage + wasmtime_engine._TRAILER.pack(
        wasmtime_engine._CACHE_MAGIC, hashlib.sha256(COPY).digest(), len(garbage),
        zlib.crc32(garbage))


def _other_module_file(directory: str) -> bytes:
    WasmtimeEngine(cache_dir=directory).load(COUNTER)
    (path,) = Path(directory).iterdir()
    return path.read_bytes()


def _another_modules_payload(data: bytes) -> bytes:
    """Damage wasmtime cannot see: a well-formed compiled module, but not the one named."""
    with tempfile.TemporaryDirectory() as other:
        trailer = wasmtime_engine._TRAILER.size
        return _other_module_file(other)[:-trailer] + data[-trailer:]


def _another_modules_file(data: bytes) -> bytes:
    """A whole, intact cache file of another module, renamed to this one's name."""
    with tempfile.TemporaryDirectory() as other:
        return _other_module_file(other)


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],
    lambda data: data[:-1] + bytes([data[-1] ^ 1]),
    lambda data: b"",
    _valid_trailer_over_garbage,
    _another_modules_payload,
    _another_modules_file,
], ids=["truncated", "flipped-bit", "empty", "garbage-with-valid-checksum", "another-payload",
        "another-file"])
def test_a_damaged_cache_file_is_recompiled_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[bytes], bytes]
) -> None:
    WasmtimeEngine(cache_dir=tmp_path).load(COPY)
    (cached,) = cached_files(tmp_path)
    cached.write_bytes(damage(cached.read_bytes()))
    assert list(WasmtimeEngine(cache_dir=tmp_path).load(COPY).run([3], read=1)[1]) == [3]
    assert cached_files(tmp_path) == [cached]  # rewritten in place, no temporary left behind
    monkeypatch.setattr(wasmtime.Module, "__init__", _refuse_to_compile)
    assert list(WasmtimeEngine(cache_dir=tmp_path).load(COPY).run([4], read=1)[1]) == [4]


def test_an_unwritable_cache_costs_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with caplog.at_level(logging.WARNING):
        runner = WasmtimeEngine(cache_dir=not_a_directory).load(COPY)
    assert list(runner.run([5], read=1)[1]) == [5]
    assert "cannot cache the compiled rule module" in caplog.text


def test_the_default_cache_is_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    WasmtimeEngine().load(COPY)
    assert len(list((tmp_path / "poprules" / "modules").glob("*.cwasm"))) == 1


def test_without_a_cache_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    WasmtimeEngine(use_cache=False).load(COPY)
    assert list(tmp_path.iterdir()) == []


def test_fuel_must_be_positive() -> None:
    with pytest.raises(ValueError, match="fuel"):
        WasmtimeEngine(fuel=0)
