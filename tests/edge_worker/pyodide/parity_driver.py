"""Quotes every case of a parity run under Pyodide (run by test_parity.py through run.mjs).

    run.mjs --mount DIR:/work parity_driver.py /work/cases.msgpack /work/answers.msgpack

cases.msgpack: {"releases": [[bundle, [raw request, ...], precompiled], ...],
"modules": [[wasm, steps], ...]}; answers.msgpack: {"answers": per release, the `answer` of
each request; "modules": per module, the outcome of each step (`engine_outcomes`);
"refused": what loading a precompiled release without its compiled module gave;
"load_compiled": the answers of the (last) precompiled release through a runner made by
`JsEngine.load_compiled`, the Worker's way in}. The test
calls the same `answer` on CPython with the wasmtime engine, so the two sides can only differ
by what they run on.

A precompiled release runs as a Worker runs it: its module is compiled first, then
`WebAssembly.Module` refuses to compile (workerd's "Wasm code generation disallowed by
embedder"), and the release is loaded with `JsEngine(compiled={sha256: module})`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from edge_worker.core.engine import EngineError
from edge_worker.core.release import EvaluationError, Release
from poprules.errors import InputError


def dumps(value: Any) -> str:
    """The bytes a PoP sends (as text): the format the parity is stated in."""
    return json.dumps(value, sort_keys=False, separators=(",", ":"), ensure_ascii=False)


def answer(release: Release, raw: bytes) -> str:
    """The quote, or the spec 9.3 error, of one raw request body."""
    try:
        return dumps(release.quote(release.read_request(raw)))
    except InputError as error:
        return dumps({"error": error.to_json()})
    except (EvaluationError, EngineError) as error:
        # A PoP answers 503 with a fixed message and logs the detail, which may word things
        # differently on each host (the engine, the Python version); the kind must agree.
        return f"503 {type(error).__name__}"


# Replaces `WebAssembly.Module` with one that refuses to compile, as workerd does; returns the
# function that puts the real one back.
_REFUSE_COMPILING = """(() => {
  const Real = WebAssembly.Module;
  function Refuse() {
    throw new WebAssembly.CompileError("Wasm code generation disallowed by embedder");
  }
  Object.assign(Refuse, {imports: Real.imports, exports: Real.exports,
                         customSections: Real.customSections, prototype: Real.prototype});
  WebAssembly.Module = Refuse;
  return () => { WebAssembly.Module = Real; };
})()"""


class _Given:
    """An engine that hands out one runner, made beforehand (`JsEngine.load_compiled`)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def load(self, module: bytes, sha256: str | None = None) -> Any:
        return self.runner


def engine_outcomes(wasm: bytes, steps: list[list[Any]]) -> list[str]:
    """What the JS engine makes of a module and a sequence of runs and reads."""
    from edge_worker.engines.js_engine import JsEngine

    try:
        runner = JsEngine().load(wasm)
    except EngineError as error:
        return [f"{type(error).__name__}: {error}"]
    outcomes = []
    for kind, *args in steps:
        try:
            if kind == "run":
                status, words = runner.run(args[0], read=args[1])
                outcomes.append(f"ok {status} {list(words)}")
            else:
                outcomes.append(f"ok {list(runner.read(args[0], args[1]))}")
        except EngineError as error:
            outcomes.append(f"{type(error).__name__}: {error}")
    return outcomes


def main(cases_path: str, answers_path: str) -> None:
    import msgpack
    from pyodide.code import run_js
    from pyodide.ffi import to_js

    from edge_worker.engines.js_engine import JsEngine
    from poprules.bundle import decode

    with open(cases_path, "rb") as file:
        cases = msgpack.unpackb(file.read())
    answers: list[list[str]] = []
    through_load_compiled: list[str] = []
    refused = "loaded without its compiled module"
    for bundle, requests, precompiled in cases["releases"]:
        if not precompiled:
            release = Release.load(bundle, JsEngine())
        else:
            parts = decode(bundle)
            sha256 = parts.manifest["parts"]["module"].removeprefix("sha256:")
            import js

            compiled = js.WebAssembly.Module.new(to_js(parts.module))
            restore = run_js(_REFUSE_COMPILING)
            try:
                try:
                    Release.load(bundle, JsEngine())
                except EngineError as error:
                    refused = f"{type(error).__name__}: {error}"
                release = Release.load(bundle, JsEngine(compiled={sha256: compiled}))
                # The other way in: a runner from the compiled module alone.
                given = Release.load(bundle, _Given(JsEngine().load_compiled(compiled)))
            finally:
                restore()
            through_load_compiled = [answer(given, raw) for raw in requests]
        answers.append([answer(release, raw) for raw in requests])
    modules = [engine_outcomes(wasm, steps) for wasm, steps in cases["modules"]]
    with open(answers_path, "wb") as file:
        file.write(msgpack.packb({"answers": answers, "modules": modules, "refused": refused,
                                  "load_compiled": through_load_compiled}))
    print(f"pyodide {sys.version.split()[0]}: {sum(map(len, answers))} answers from "
          f"{len(answers)} releases, {len(modules)} engine cases")


if __name__ == "__main__":
    main(*sys.argv[1:])
