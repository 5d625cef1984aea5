"""The JS WebAssembly adapter of `edge_worker.core.engine`: rule modules under Pyodide.

Used by the Cloudflare Worker and by the Node-Pyodide harness that proves it gives the wasmtime
host's answers byte for byte (tests/edge_worker/pyodide/). The module imports on CPython too
(its `js` and `pyodide.ffi` imports happen inside functions), so the checkers can see it; it
runs only where those modules exist.

Where the module comes from:

- Workers refuse to compile WebAssembly at run time ("Wasm code generation disallowed by
  embedder"): the Worker uploads `rules.wasm` with its code, the runtime compiles it, and
  `rules.mjs` hands the compiled `WebAssembly.Module` to Python. Give it to the engine as
  `JsEngine(compiled={sha256: module})`, so `Release.load(bundle, engine)` finds it by the
  digest the bundle's manifest names and never compiles; or call `load_compiled(module)`.
- Node (the tests, the benchmark) may compile: `load(bytes)` uses `new WebAssembly.Module`.

What bounds an evaluation: the JS API has no fuel. The host relies on the ABI's bounds (the
input area holds at most `abi.INPUT_WORDS` words, the request parser caps a cart at 500
lines, and the compiled module's work is linear in lines × rules with no unbounded loop) plus
the platform's CPU limit per request, which stops a Worker whose module would loop (10 ms on
the free plan; the self-hosted PoP's fuel plays that part under wasmtime). Memory is bounded
at load: the module must declare min = max pages, checked by trying to grow it.

Moving the words: the request's words go in as one byte copy (`struct` packs them into a
bytearray whose buffer `TypedArray.assign` copies into the module's memory) and the answer's
come out as one (`Uint8Array.to_bytes`); converting each word to or from a JS BigInt through a
`BigInt64Array` was measured slower (docs/cloudflare.md, "Toolchain and parity"). The memory
can never grow, so its buffer never detaches and the view made at load stays valid.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from edge_worker.core.engine import EngineError, InvalidModule
from wasm_build import abi

DEFAULT_MAX_MEMORY = 256 * 2**20
_AREAS_END = max(abi.INPUT_BASE + 8 * abi.INPUT_WORDS, abi.OUTPUT_BASE + 8 * abi.OUTPUT_WORDS)


def _js() -> Any:
    import js  # type: ignore[import-not-found]  # Pyodide's bridge to the JS global scope

    return js


def _ffi() -> Any:
    import pyodide.ffi  # type: ignore[import-not-found]  # Pyodide's conversions and errors

    return pyodide.ffi


def _js_exception() -> type[Exception]:
    """Only evaluated when an exception reaches the `except`, so the fast path pays nothing."""
    exception: type[Exception] = _ffi().JsException
    return exception


class JsEngine:
    """Instantiates rule modules with the host's `WebAssembly` API; one per Worker isolate.

    `compiled` maps a module's sha256 (hex) to its `WebAssembly.Module` as the Worker's
    runtime compiled it from exactly those bytes (the build target writes rules.wasm from the
    bundle it ships); `load` uses it instead of compiling. `max_memory_bytes` bounds what a
    module may declare (a Worker has 128 MB in all).
    """

    def __init__(self, *, compiled: Mapping[str, Any] | None = None,
                 max_memory_bytes: int = DEFAULT_MAX_MEMORY) -> None:
        self._compiled = dict(compiled or {})
        self._max_memory = max_memory_bytes

    def load(self, module: bytes, sha256: str | None = None) -> JsRunner:
        """A runner for the module: the precompiled one of this digest when the engine has
        it, else compiled from the bytes (Node; a Worker refuses, which is InvalidModule)."""
        wasm = module if type(module) is bytes else bytes(module)
        if wasm[:4] != b"\0asm":
            raise InvalidModule("not a WebAssembly binary: it does not start with \\0asm")
        compiled = (self._compiled.get(sha256 or hashlib.sha256(wasm).hexdigest())
                    if self._compiled else None)
        if compiled is None:
            try:
                compiled = _js().WebAssembly.Module.new(_js_bytes(wasm))
            except _js_exception() as error:
                raise InvalidModule(f"the rule module does not compile: {_reason(error)}") \
                    from error
        _check_interface(compiled)
        _check_evaluate_type(wasm)
        return self._runner(compiled)

    def load_compiled(self, module: Any) -> JsRunner:
        """A runner for an already compiled `WebAssembly.Module` (what rules.mjs exports).

        Without the bytes, `evaluate`'s result type is checked on each call only as far as
        the JS API shows it (an int comes back); `load` with the bytes checks it exactly.
        """
        _check_interface(module)
        return self._runner(module)

    def _runner(self, module: Any) -> JsRunner:
        try:
            return JsRunner(module, self._max_memory)
        except InvalidModule:
            raise
        except EngineError as error:
            raise InvalidModule(str(error)) from error


class JsRunner:
    """A loaded rule module on one instance (an isolate runs one request at a time).

    The instance is made at once, so a module that cannot start fails the load, not a request;
    a call that fails may leave it inconsistent, so it is replaced before the next call.
    """

    def __init__(self, module: Any, max_memory: int) -> None:
        self._module = module
        self._max_memory = max_memory
        self._instance: _Instance | None = self._new_instance()
        self._ran = False

    def run(self, words: Sequence[int], read: int = 0) -> tuple[int, array[int]]:
        n = len(words)
        if n > abi.INPUT_WORDS:
            raise EngineError(f"{n:,} input words exceed the input area of {abi.INPUT_WORDS:,}")
        if not 0 <= read <= abi.OUTPUT_WORDS:
            raise EngineError(f"cannot read {read:,} words from an output area of "
                              f"{abi.OUTPUT_WORDS:,}")
        self._ran = False
        instance = self._instance or self._replace()
        if type(words) is array and words.typecode == "q":
            data: bytes | memoryview = memoryview(words).cast("B")  # assign wants bytes
        else:
            try:
                data = struct.pack(f"<{n}q", *words)
            except struct.error as error:
                raise EngineError(f"an input word is not a signed 64-bit integer: {error}") \
                    from None
        instance.memory.subarray(abi.INPUT_BASE, abi.INPUT_BASE + 8 * n).assign(data)
        try:
            status = instance.evaluate()
        except _js_exception() as error:
            self._instance = None
            raise EngineError(f"the rule module trapped: {_reason(error)}") from error
        if type(status) is not int:
            self._instance = None
            raise EngineError(f"the rule module's evaluate returned {status!r}, not an i32")
        self._ran = True
        return status, _words(instance.memory, abi.OUTPUT_BASE, read)

    def read(self, start: int, count: int) -> array[int]:
        if not self._ran or self._instance is None:
            raise EngineError("no evaluation to read: the last run failed or never ran")
        if start < 0 or count < 0 or start + count > abi.OUTPUT_WORDS:
            raise EngineError(f"output words {start:,} to {start + count:,} fall outside the "
                              f"output area of {abi.OUTPUT_WORDS:,}")
        return _words(self._instance.memory, abi.OUTPUT_BASE + 8 * start, count)

    def _replace(self) -> _Instance:
        self._instance = self._new_instance()
        return self._instance

    def _new_instance(self) -> _Instance:
        js = _js()
        try:
            instance = js.WebAssembly.Instance.new(self._module, js.Object.new())
        except _js_exception() as error:
            raise EngineError(f"the rule module failed while starting: {_reason(error)}") \
                from error
        exports = instance.exports
        memory, evaluate = exports.memory, exports.evaluate
        if evaluate.length != 0:
            raise InvalidModule("the rule module must export a function `evaluate` of type "
                                f"() -> i32, not one of {evaluate.length} parameters")
        if _tag(memory.buffer) != "[object ArrayBuffer]":
            raise InvalidModule("the rule module's memory must be 32-bit and not shared")
        size = int(memory.buffer.byteLength)
        try:
            memory.grow(1)
        except _js_exception():
            pass  # at its maximum already: it can never grow, as the ABI demands
        else:
            raise InvalidModule("the rule module's memory must have min = max pages so it can "
                                "never grow")
        if size < _AREAS_END:
            raise InvalidModule(f"the rule module's memory ({size:,} bytes) does not hold the "
                                f"ABI's input and output areas ({_AREAS_END:,} bytes)")
        if size > self._max_memory:
            raise InvalidModule(f"the rule module's memory ({size:,} bytes) exceeds this "
                                f"engine's limit of {self._max_memory:,} bytes")
        return _Instance(js.Uint8Array.new(memory.buffer), evaluate)


class _Instance:
    __slots__ = ("evaluate", "memory")

    def __init__(self, memory: Any, evaluate: Any) -> None:
        self.memory = memory  # a Uint8Array over the whole memory, valid for the instance's life
        self.evaluate = evaluate


def _check_interface(module: Any) -> None:
    """The ABI's demands that the JS API shows before instantiating: no imports, and the
    exports `memory` and `evaluate` of the right kinds."""
    js = _js()
    if _tag(module) != "[object WebAssembly.Module]":
        raise InvalidModule(f"not a compiled WebAssembly.Module: {_tag(module)}")
    imports = js.WebAssembly.Module.imports(module)
    if imports.length:
        names = ", ".join(f"{i.module}.{i.name}" for i in imports)
        raise InvalidModule(f"the rule module imports {names}: a rule module must import nothing "
                            "(no clock, no randomness, no host calls)")
    kinds = {e.name: e.kind for e in js.WebAssembly.Module.exports(module)}
    if kinds.get("evaluate") != "function":
        raise InvalidModule("the rule module must export a function `evaluate` of type () -> i32")
    if kinds.get("memory") != "memory":
        raise InvalidModule("the rule module must export its memory as `memory`")


_NUMBER_TYPES = frozenset(b"\x7f\x7e\x7d\x7c\x7b")  # i32 i64 f32 f64 v128: one byte each
_I32 = b"\x7f"


def _check_evaluate_type(wasm: bytes) -> None:
    """`evaluate` must be () -> i32. The JS API shows a function's parameter count but not its
    result type (an i64 would come back as a BigInt, converted to a Python int that passes
    for a status), so the type is read from the binary: the type, function and export
    sections. Runs after `_check_interface`, so the module imports no function that would
    shift the function indexes."""
    try:
        signature = _export_signature(wasm, b"evaluate")
    except IndexError:
        raise InvalidModule("the rule module is truncated: a section runs past its end") \
            from None
    if signature is not None and signature != (b"", _I32):
        raise InvalidModule("the rule module must export a function `evaluate` of type () -> i32")


def _export_signature(wasm: bytes, name: bytes) -> tuple[bytes, bytes] | None:
    """(parameter types, result types) of the exported function `name`, each type one byte;
    None when the binary has no such export, which the JS API reports more clearly."""
    types: list[tuple[bytes, bytes] | None] = []
    functions: list[int] = []
    index: int | None = None
    at = 8  # past the magic and version
    while at < len(wasm):
        section = wasm[at]
        size, at = _leb(wasm, at + 1)
        end = at + size
        if section == 1:  # types
            count, at = _leb(wasm, at)
            for _ in range(count):
                if wasm[at] != 0x60:  # not a plain function type (GC proposal): cannot be ours
                    raise InvalidModule("the rule module declares types beyond functions")
                n, at = _leb(wasm, at + 1)
                params, at = wasm[at:at + n], at + n
                n, at = _leb(wasm, at)
                results, at = wasm[at:at + n], at + n
                simple = _NUMBER_TYPES.issuperset(params + results)
                types.append((params, results) if simple else None)
        elif section == 3:  # functions: their type indexes
            count, at = _leb(wasm, at)
            for _ in range(count):
                kind, at = _leb(wasm, at)
                functions.append(kind)
        elif section == 7:  # exports
            count, at = _leb(wasm, at)
            for _ in range(count):
                n, at = _leb(wasm, at)
                export, kind = wasm[at:at + n], wasm[at + n]
                target, at = _leb(wasm, at + n + 1)
                if export == name and kind == 0:
                    index = target
        at = end
    if index is None:
        return None
    if index >= len(functions) or functions[index] >= len(types):
        raise InvalidModule("the rule module's `evaluate` export names no function it defines")
    signature = types[functions[index]]
    if signature is None:
        raise InvalidModule("the rule module must export a function `evaluate` of type () -> i32")
    return signature


def _leb(data: bytes, at: int) -> tuple[int, int]:
    """An unsigned LEB128 number at `at`, and the index past it."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _tag(value: Any) -> str:
    """JS's own name of a value's kind (`[object ArrayBuffer]`): a proxy of a JS object is no
    Python instance of anything, and prototype methods refuse a proxied receiver."""
    return str(_js().Object.prototype.toString.call(value))


def _js_bytes(data: bytes) -> Any:
    """A JS Uint8Array copy of `data` (WebAssembly.Module takes no Python buffer)."""
    return _ffi().to_js(data)


def _words(memory: Any, at: int, count: int) -> array[int]:
    words = array("q")
    if count:
        words.frombytes(memory.subarray(at, at + 8 * count).to_bytes())
    return words


def _reason(error: Exception) -> str:
    """The JS error's message, without Pyodide's traceback decoration."""
    message = str(error).strip().splitlines()
    return message[-1] if message else type(error).__name__
