"""The seam between the portable core and a WebAssembly engine.

The core must import under Pyodide, where wasmtime does not exist, so it sees the engine only
through these two protocols; each host passes in an adapter (`edge_worker.engines`: wasmtime
under CPython, the JS WebAssembly API under Pyodide). The errors are plain Python so the core
can catch them without importing any engine.

A release's rule module follows `wasm_build.abi`: the host writes the request's int64 words at
`INPUT_BASE`, calls the export `evaluate() -> i32`, and reads the answer's words from
`OUTPUT_BASE`. The interface moves whole word runs across that boundary because a call per
word, or a call per field, would cost more than the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class EngineError(Exception):
    """A module could not be run: it trapped, broke the ABI, or the host misused the runner.

    The PoP answers the request with an error and keeps serving; the runner is usable again
    on the next call.
    """


class InvalidModule(EngineError):
    """The bytes are not a rule module this engine will run (imports, exports, memory)."""


class Runaway(EngineError):
    """The evaluation used up its fuel: the module loops, or the request exceeds the bound.

    Kept apart from other traps because it is the one failure an operator tunes (the fuel
    bound) rather than a defect in the module.
    """

    def __init__(self, fuel: int) -> None:
        super().__init__(
            f"the rule module ran out of fuel ({fuel:,} units) and was stopped: it loops, "
            "or the request needs more work than the bound allows"
        )
        self.fuel = fuel


class Runner(Protocol):
    """A loaded module, ready to evaluate requests; safe to share between threads.

    Each thread evaluates on its own instance, so `read` returns the words of the last `run`
    made by the calling thread.
    """

    def run(self, words: Sequence[int], read: int = 0) -> tuple[int, Sequence[int]]:
        """Write `words` at INPUT_BASE, call `evaluate`, return its i32 result and the first
        `read` output words.

        Reading in the same call saves a second crossing for the fixed-size head of the answer;
        `read` fetches the variable-size rest. An `array('q')` is copied without conversion.
        Raises `Runaway` when the fuel runs out and `EngineError` on any other failure.
        """
        ...

    def read(self, start: int, count: int) -> Sequence[int]:
        """Output words `start` to `start + count` of this thread's last successful run."""
        ...


class Engine(Protocol):
    """Compiles rule modules into runners; one engine serves every release a host loads."""

    def load(self, module: bytes, sha256: str | None = None) -> Runner:
        """Check and compile a module; raises `InvalidModule` with the reason when it is
        not one this engine will run.

        `sha256` is the module's digest (hex) when the caller has just verified it, as
        `Release.load` has against the bundle's manifest: an engine that keys a cache by it
        need not hash a megabyte again. A caller that has not verified it passes nothing.
        """
        ...
