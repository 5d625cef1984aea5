"""The public Python API: the same answers as the CLI, without a process.

    program = poprules.load("rules.yaml", "catalog.json")
    answer = poprules.quote(program, {"lines": [...], "at": "2026-07-04T10:00:00Z"})

Invalid input raises `poprules.InputError`, whose `to_json()` is the error of spec 9.3.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from poprules.errors import InputError
from poprules.jsonio import load_object
from poprules.request import Request, parse_request
from wasm_build.lang.model import Program
from wasm_build.lang.program import load_program
from wasm_build.reference.quote import quote as reference_quote

PathLike = str | os.PathLike[str]


def load(program: PathLike, catalog: PathLike) -> Program:
    """Read and check a program and its catalog (spec 9.3 order); raise the first error."""
    return load_program(program, catalog)


def read_request(program: Program, request: PathLike | bytes | dict[str, Any]) -> Request:
    """A request from a file, raw JSON bytes or an already-parsed object."""
    source: str | None = None
    if isinstance(request, dict):
        # Round-trip through the strict reader so a Python float is read as its JSON text.
        raw: bytes = json.dumps(request).encode()
    elif isinstance(request, bytes):
        raw = request
    else:
        source = str(request)
        try:
            raw = Path(request).read_bytes()
        except OSError as exc:
            raise InputError("request", f"cannot read the request: {exc.strerror}").from_source(
                source
            ) from None
    try:
        data = load_object(raw, "request")
        return parse_request(data, skus=program.catalog.by_sku, zone=program.zone)
    except InputError as exc:
        raise (exc.from_source(source) if source else exc) from None


def quote(program: Program, request: PathLike | bytes | dict[str, Any]) -> dict[str, Any]:
    """The quote of spec section 8, computed by the reference evaluator."""
    return reference_quote(program, read_request(program, request))
