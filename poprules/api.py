"""The public Python API: the same answers as the CLI, without a process.

    program = poprules.load("rules.yaml", "catalog.json")
    answer = poprules.quote(program, {"lines": [...], "at": "2026-07-04T10:00:00Z"})

`quote` runs the compiled WebAssembly module by default and the reference evaluator with
`engine="python"`; both give the same answer. Invalid input raises `poprules.InputError`,
whose `to_json()` is the error of spec 9.3.
"""

from __future__ import annotations

import atexit
import json
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from poprules.errors import InputError
from poprules.jsonio import load_object
from poprules.request import Request, parse_request
from wasm_build.lang.model import Program
from wasm_build.lang.program import load_program
from wasm_build.reference.quote import quote as reference_quote

if TYPE_CHECKING:
    from edge_worker.core.engine import Engine
    from edge_worker.core.release import Release

PathLike = str | os.PathLike[str]
RequestInput = PathLike | bytes | dict[str, Any]
EngineName = Literal["wasm", "python"]


def load(program: PathLike, catalog: PathLike) -> Program:
    """Read and check a program and its catalog (spec 9.3 order); raise the first error."""
    return load_program(program, catalog)


def build(program: Program, *, key: bytes | None = None,
          customer_keys: Sequence[tuple[str, str]] = ()) -> bytes:
    """The release bundle of a checked program: the same inputs give the same bytes."""
    from wasm_build.bundle import build as build_bundle

    return build_bundle(program, key=key, customer_keys=customer_keys)


def default_engine() -> Engine:
    """The wasmtime engine, shared by every release this process loads."""
    global _ENGINE
    if _ENGINE is None:
        from edge_worker.engines.wasmtime_engine import WasmtimeEngine

        _ENGINE = WasmtimeEngine()
        atexit.register(_release_engine)
    return _ENGINE


def _release_engine() -> None:
    """Free the engine and its releases while the interpreter still runs: wasmtime-py's
    finalizers fail (noisily) when they run after its module has been torn down."""
    global _ENGINE
    _RELEASES.clear()
    _ENGINE = None


_ENGINE: Engine | None = None


_RELEASES: dict[int, Release] = {}


def _release_of(program: Program) -> Release:
    """The compiled release of a checked program, built once per program object: quoting
    many requests against one program must not recompile it each time."""
    key = id(program)
    release = _RELEASES.get(key)
    if release is None:
        release = _RELEASES[key] = load_release(build(program))
        weakref.finalize(program, _RELEASES.pop, key, None)
    return release


def load_release(bundle: bytes, engine: Engine | None = None) -> Release:
    from edge_worker.core.release import Release

    return Release.load(bundle, engine or default_engine())


def _raw(request: RequestInput) -> tuple[bytes, str | None]:
    if isinstance(request, dict):
        # Through the strict reader, so a Python float is read as its JSON text.
        return json.dumps(request).encode(), None
    if isinstance(request, bytes):
        return request, None
    try:
        return Path(request).read_bytes(), str(request)
    except OSError as exc:
        raise InputError("request", f"cannot read the request: {exc.strerror}").from_source(
            str(request)
        ) from None


def read_request(program: Program, request: RequestInput) -> Request:
    """A request from a file, raw JSON bytes or an already-parsed object."""
    raw, source = _raw(request)
    try:
        data = load_object(raw, "request")
        return parse_request(data, skus=program.catalog.by_sku, zone=program.zone)
    except InputError as exc:
        raise (exc.from_source(source) if source else exc) from None


def quote(program: Program, request: RequestInput, *,
          engine: EngineName = "wasm") -> dict[str, Any]:
    """The quote of spec section 8 for a program read from its sources (no `release` key)."""
    parsed = read_request(program, request)
    if engine == "python":
        return reference_quote(program, parsed)
    from edge_worker.core.release import EvaluationError, TooLarge

    try:
        return _release_of(program).quote(parsed, with_release=False)
    except (TooLarge, EvaluationError):
        # Beyond the module's 64-bit figures or its areas: with the sources at hand, the
        # exact answer is still one call away (docs/decisions.md).
        return reference_quote(program, parsed)


def quote_bundle(release: Release, request: RequestInput) -> dict[str, Any]:
    """The quote from a built release, naming it in `release`."""
    raw, source = _raw(request)
    try:
        parsed = release.read_request(load_object(raw, "request"))
    except InputError as exc:
        raise (exc.from_source(source) if source else exc) from None
    return release.quote(parsed)
