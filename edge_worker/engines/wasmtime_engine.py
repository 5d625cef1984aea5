"""The wasmtime adapter of `edge_worker.core.engine`: rule modules under CPython.

Speed is the reason for most of what is here. A fresh Store + Instance costs hundreds of
microseconds, so each thread keeps one; `Func.__call__` and `Memory.read`/`write` re-query
types and memory on every call, so a call goes through the C API's unchecked call and the
words move through a view of the memory made once per instance. Both rely on the memory never
growing, which `load` guarantees (min = max pages, and a store limit at that size).

The unchecked call and the store's context pointer are private to wasmtime-py. They are
checked once at import (`FAST_CALL_UNAVAILABLE` says why they cannot be used), pyproject.toml
pins the wasmtime version they were checked against, and the public API takes over when a
check fails.

Every evaluation is bounded: fuel (set before each call; running out raises `Runaway`) and
memory (fixed at load). A call that fails may leave the instance inconsistent, so that
thread's instance is discarded and the next call on the thread starts a new one.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import logging
import os
import platform
import struct
import tempfile
import threading
import zlib
from array import array
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import wasmtime

from edge_worker.core.engine import EngineError, InvalidModule, Runaway
from wasm_build import abi

log = logging.getLogger(__name__)

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
# Enough for a 500-line cart against 1,000 rules with room to spare, yet a module that loops
# is stopped within about half a second (a tight loop burns ~2.5e9 units/s here).
DEFAULT_FUEL = 1_000_000_000
DEFAULT_MAX_MEMORY = 256 * 2**20
MAX_TABLE_ELEMENTS = 65_536

# Every setting that changes the compiled code, so it is also part of the cache key.
_CONFIG: dict[str, object] = {"consume_fuel": True}
_CACHE_SUFFIX = (f"-wasmtime{WASMTIME_VERSION}-{platform.machine()}-"
                 f"{hashlib.sha256(repr(sorted(_CONFIG.items())).encode()).hexdigest()[:12]}.cwasm")
_CACHE_MAGIC = b"poprules compiled module 2\n"
_TRAILER = struct.Struct(f"<{len(_CACHE_MAGIC)}s32sQI")  # magic, module sha256, length, crc32

# Word indexes into a memory viewed as int64: wasmtime-py runs only on x86-64 and aarch64,
# both little-endian like wasm, so the native 'q' view reads the ABI's words as they are.
_IN = abi.INPUT_BASE // 8
_AREAS_END = max(abi.INPUT_BASE + 8 * abi.INPUT_WORDS, abi.OUTPUT_BASE + 8 * abi.OUTPUT_WORDS)


class _Changed(Exception):
    """A private piece of wasmtime-py is not what this adapter was written for."""


class _Unchecked:
    """The private pieces of wasmtime-py behind the fast call, each checked against the
    signature this adapter was written for."""

    def __init__(self) -> None:
        from wasmtime import _bindings as b

        p = ctypes.POINTER
        self.call = b._wasmtime_func_call_unchecked
        self.set_fuel = b._wasmtime_context_set_fuel
        self.val_raw = b.wasmtime_val_raw_t
        self.trap_ptr = p(b.wasm_trap_t)
        expected = {
            "wasmtime_func_call_unchecked": (
                self.call,
                [p(b.wasmtime_context_t), p(b.wasmtime_func_t), p(b.wasmtime_val_raw_t),
                 ctypes.c_size_t, p(p(b.wasm_trap_t))],
            ),
            "wasmtime_context_set_fuel": (self.set_fuel, [p(b.wasmtime_context_t), ctypes.c_uint64]),
        }
        for name, (function, argtypes) in expected.items():
            if function.argtypes != argtypes or function.restype is not p(b.wasmtime_error_t):
                raise _Changed(
                    f"{name} changed: argtypes {function.argtypes}, restype {function.restype}"
                )
        if wasmtime.Func.__annotations__.get("_func") is not b.wasmtime_func_t:
            raise _Changed("Func no longer keeps its wasmtime_func_t in `_func`")
        for owner, name in ((wasmtime.Store, "_context"), (wasmtime.Trap, "_from_ptr"),
                            (wasmtime.WasmtimeError, "_from_ptr")):
            if not callable(getattr(owner, name, None)):
                raise _Changed(f"{owner.__name__}.{name} is gone")


def _probe() -> tuple[_Unchecked | None, str | None]:
    try:
        return _Unchecked(), None
    except (ImportError, AttributeError, _Changed) as error:
        return None, (
            f"wasmtime {WASMTIME_VERSION}: {error}; the rule module runs through the slower "
            "public API. Update edge_worker/engines/wasmtime_engine.py and the wasmtime pin "
            "in pyproject.toml together."
        )


_UNCHECKED, FAST_CALL_UNAVAILABLE = _probe()


def default_cache_dir() -> Path:
    """Per user, because a cached module is native code this process will execute."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "poprules" / "modules"


class WasmtimeEngine:
    """Compiles rule modules with wasmtime; one per process serves every release it loads.

    `fuel` bounds each evaluation; `max_memory_bytes` bounds what a module may declare;
    compiled modules are kept in `cache_dir` (default `default_cache_dir()`) unless
    `use_cache` is false. `fast_calls=False` forces the public call path, the one used
    anyway when `FAST_CALL_UNAVAILABLE`.
    """

    def __init__(
        self,
        *,
        fuel: int = DEFAULT_FUEL,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
        fast_calls: bool = True,
    ) -> None:
        if fuel <= 0:
            raise ValueError(f"fuel must be positive, not {fuel}")
        config = wasmtime.Config()
        for name, value in _CONFIG.items():
            setattr(config, name, value)
        self._engine = wasmtime.Engine(config)
        self._fuel = fuel
        self._max_memory = max_memory_bytes
        self._cache_dir = (
            None if not use_cache else Path(cache_dir) if cache_dir is not None
            else default_cache_dir()
        )
        self._fast = fast_calls and _UNCHECKED is not None

    def load(self, module: bytes, sha256: str | None = None) -> WasmtimeRunner:
        wasm = module if type(module) is bytes else bytes(module)
        if wasm[:4] != b"\0asm":
            raise InvalidModule("not a WebAssembly binary: it does not start with \\0asm")
        sha256 = sha256 or hashlib.sha256(wasm).hexdigest()
        path = self._cache_path(sha256)
        compiled = _read_cache(self._engine, path, sha256) if path is not None else None
        from_cache = compiled is not None
        if compiled is None:
            try:
                compiled = wasmtime.Module(self._engine, wasm)
            except wasmtime.WasmtimeError as error:
                raise InvalidModule(f"the rule module does not compile: {_reason(error)}") from error
        memory_bytes = _check_shape(compiled, self._max_memory)
        try:
            runner = WasmtimeRunner(self._engine, compiled, self._fuel, memory_bytes,
                                    self._fast)
        except EngineError as error:
            raise InvalidModule(str(error)) from error
        if path is not None and not from_cache:
            _write_cache(path, compiled, sha256)
        return runner

    def _cache_path(self, sha256: str) -> Path | None:
        if self._cache_dir is None:
            return None
        name = sha256 + _CACHE_SUFFIX
        return self._cache_dir / name


class _Slot:
    """One thread's Store + Instance, with everything a call needs resolved once."""

    __slots__ = ("args", "buffer", "context", "evaluate", "func_ref", "ran", "raw", "store",
                 "trap", "trap_ref", "view")

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance) -> None:
        exports = instance.exports(store)
        memory = exports["memory"]
        evaluate = exports["evaluate"]
        assert isinstance(memory, wasmtime.Memory) and isinstance(evaluate, wasmtime.Func)
        self.store = store
        self.evaluate = evaluate
        # Valid for the store's life: the memory cannot grow, so it never moves.
        self.buffer = memory.get_buffer_ptr(store)
        self.raw = memoryview(self.buffer).cast("B")
        self.view = self.raw.cast("q")
        self.ran = False
        if _UNCHECKED is not None:
            self.context = store._context()
            self.func_ref = ctypes.byref(evaluate._func)
            self.args = (_UNCHECKED.val_raw * 1)()  # no parameters, one i32 result
            self.trap = _UNCHECKED.trap_ptr()
            self.trap_ref = ctypes.byref(self.trap)


class WasmtimeRunner:
    """A loaded rule module; each thread evaluates on its own Store + Instance.

    Made by `WasmtimeEngine.load`, which has checked the module's shape; the loading thread's
    instance is made at once, so a module that cannot start fails the load, not a request.
    """

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module, fuel: int,
                 memory_bytes: int, fast: bool) -> None:
        self._engine = engine
        self._module = module
        self._fuel = fuel
        self._memory_bytes = memory_bytes
        self._call = self._call_unchecked if fast else self._call_public
        self._local = threading.local()
        self._local.slot = self._new_slot()

    def run(self, words: Sequence[int], read: int = 0) -> tuple[int, array[int]]:
        try:
            slot: _Slot = self._local.slot
        except AttributeError:
            slot = self._local.slot = self._new_slot()
        slot.ran = False
        n = len(words)
        if n > abi.INPUT_WORDS:
            raise EngineError(f"{n:,} input words exceed the input area of {abi.INPUT_WORDS:,}")
        if not 0 <= read <= abi.OUTPUT_WORDS:
            raise EngineError(f"cannot read {read:,} words from an output area of "
                              f"{abi.OUTPUT_WORDS:,}")
        if type(words) is array and words.typecode == "q":
            slot.view[_IN:_IN + n] = words
        else:
            try:
                struct.pack_into(f"<{n}q", slot.buffer, abi.INPUT_BASE, *words)
            except struct.error as error:
                raise EngineError(f"an input word is not a signed 64-bit integer: {error}") from None
        status = self._call(slot)
        slot.ran = True
        return status, _copy(slot.raw[abi.OUTPUT_BASE:abi.OUTPUT_BASE + 8 * read])

    def read(self, start: int, count: int) -> array[int]:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None or not slot.ran:
            raise EngineError("no evaluation to read: this thread's last run failed or never ran")
        if start < 0 or count < 0 or start + count > abi.OUTPUT_WORDS:
            raise EngineError(f"output words {start:,} to {start + count:,} fall outside the "
                              f"output area of {abi.OUTPUT_WORDS:,}")
        at = abi.OUTPUT_BASE + 8 * start
        return _copy(slot.raw[at:at + 8 * count])

    def _new_slot(self) -> _Slot:
        store = wasmtime.Store(self._engine)
        store.set_limits(memory_size=self._memory_bytes, table_elements=MAX_TABLE_ELEMENTS,
                         instances=1, memories=1)
        store.set_fuel(self._fuel)  # a start function runs under the same bound
        try:
            instance = wasmtime.Instance(store, self._module, [])
        except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
            raise _failure(error, self._fuel, " while starting") from error
        return _Slot(store, instance)

    def _call_unchecked(self, slot: _Slot) -> int:
        assert _UNCHECKED is not None
        error = _UNCHECKED.set_fuel(slot.context, self._fuel)
        if not error:
            error = _UNCHECKED.call(slot.context, slot.func_ref, slot.args, 1, slot.trap_ref)
        if error or slot.trap:
            del self._local.slot
            cause: Exception = (wasmtime.WasmtimeError._from_ptr(error) if error
                                else wasmtime.Trap._from_ptr(slot.trap))
            raise _failure(cause, self._fuel) from cause
        result: int = slot.args[0].i32
        return result

    def _call_public(self, slot: _Slot) -> int:
        try:
            slot.store.set_fuel(self._fuel)
            result: int = slot.evaluate(slot.store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
            del self._local.slot
            raise _failure(error, self._fuel) from error
        return result


def _copy(data: memoryview) -> array[int]:
    """The words as an int64 array: one copy of the bytes, where `tolist()` would make a
    Python int of every word, most of which the decoder never looks at (5 µs a quote)."""
    copied = array("q")
    copied.frombytes(data)
    return copied


def _failure(error: Exception, fuel: int, when: str = "") -> EngineError:
    if isinstance(error, wasmtime.Trap) and error.trap_code is wasmtime.TrapCode.OUT_OF_FUEL:
        return Runaway(fuel)
    kind = "trapped" if isinstance(error, wasmtime.Trap) else "failed"
    return EngineError(f"the rule module {kind}{when}: {_reason(error)}")


def _reason(error: Exception) -> str:
    """The innermost cause of a wasmtime message, whose first lines are a backtrace."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _check_shape(module: wasmtime.Module, max_memory: int) -> int:
    """The ABI's demands on a module's interface; returns the size of its memory in bytes."""
    if module.imports:
        names = ", ".join(f"{i.module}.{i.name}" for i in module.imports)
        raise InvalidModule(f"the rule module imports {names}: a rule module must import nothing "
                            "(no clock, no randomness, no host calls)")
    exports = {export.name: export.type for export in module.exports}
    evaluate = exports.get("evaluate")
    if (not isinstance(evaluate, wasmtime.FuncType) or evaluate.params
            or evaluate.results != [wasmtime.ValType.i32()]):
        raise InvalidModule("the rule module must export a function `evaluate` of type () -> i32")
    memory = exports.get("memory")
    if not isinstance(memory, wasmtime.MemoryType):
        raise InvalidModule("the rule module must export its memory as `memory`")
    if memory.is_64 or memory.is_shared:
        raise InvalidModule("the rule module's memory must be 32-bit and not shared")
    limits = memory.limits
    if limits.max != limits.min:
        raise InvalidModule(
            "the rule module's memory must have min = max pages so it can never grow "
            f"(min {limits.min}, max {'none' if limits.max is None else limits.max})"
        )
    size: int = limits.min * memory.page_size
    if size < _AREAS_END:
        raise InvalidModule(f"the rule module's memory ({size:,} bytes) does not hold the ABI's "
                            f"input and output areas ({_AREAS_END:,} bytes)")
    if size > max_memory:
        raise InvalidModule(f"the rule module's memory ({size:,} bytes) exceeds this engine's "
                            f"limit of {max_memory:,} bytes")
    return size


def _read_cache(engine: wasmtime.Engine, path: Path, sha256: str) -> wasmtime.Module | None:
    """The cached compiled module, or None when absent, damaged or another module's.

    The file is wasmtime's serialized module as is, so `deserialize_file` maps it instead of
    copying it (0.07 ms against 1 ms at 1,000 rules), followed by our trailer: this module's
    digest, the payload's length and a CRC-32 of it. The check guards against damage because
    deserializing runs the native code as is: a truncated or corrupted file, or one renamed
    from another module, must cost a compile, never a crash. (It does not guard against
    someone who can write the cache directory; that is why the directory is per user.)
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < _TRAILER.size:
        return None
    magic, key, length, crc = _TRAILER.unpack_from(data, len(data) - _TRAILER.size)
    if (magic != _CACHE_MAGIC or key != bytes.fromhex(sha256)
            or length != len(data) - _TRAILER.size
            or zlib.crc32(memoryview(data)[:length]) != crc):
        return None
    try:
        return wasmtime.Module.deserialize_file(engine, str(path))
    except wasmtime.WasmtimeError:
        return None


def _write_cache(path: Path, module: wasmtime.Module, sha256: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file; a
    failure costs a compile on the next load, never the load itself."""
    payload = bytes(module.serialize())
    trailer = _TRAILER.pack(_CACHE_MAGIC, bytes.fromhex(sha256), len(payload),
                            zlib.crc32(payload))
    temporary: str | None = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(payload + trailer)
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        log.warning("cannot cache the compiled rule module in %s: %s", path.parent, error)
    finally:
        if temporary is not None:
            with suppress(OSError):
                os.unlink(temporary)
