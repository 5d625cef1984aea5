"""The CPython side of the Node-Pyodide harness: one call, one Node process.

    result = run_pyodide(DRIVER, "arg", mounts={tmp_path: "/work"}, copies=["edge_worker/cloudflare"])

Start-up costs about 3 s (loading Pyodide), so a test should put everything it checks through
one driver run and exchange data through a mounted directory (JSON or msgpack files), not one
process per case. Used by the tests here and by bench/pyodide.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EDGE = ROOT / ".edge"
NODE = EDGE / "bin" / "node"
RUNNER = Path(__file__).resolve().parent / "run.mjs"
INSTALL_HINT = "run `bash scripts/edge_toolchain.sh` (make test does) to install it under .edge/"


class PyodideFailed(RuntimeError):
    """The driver exited non-zero; the message carries its output."""


def toolchain_problem() -> str | None:
    """Why the harness cannot run here, or None."""
    for path in (NODE, EDGE / "node_modules" / "pyodide" / "pyodide.mjs", EDGE / ".installed"):
        if not path.exists():
            return f"the Pyodide toolchain is missing ({path} does not exist): {INSTALL_HINT}"
    if not any((EDGE / "wheels").glob("*.whl")):
        return f"the Pyodide wheels are missing from {EDGE / 'wheels'}: {INSTALL_HINT}"
    return None


def run_pyodide(driver: Path, *args: str, mounts: Mapping[Path, str] | None = None,
                copies: Sequence[str] = (), wheels: bool = True, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `driver` under Pyodide with `args`; `mounts` maps host directories to paths in
    Pyodide's file system, `copies` adds repo paths to the copied core (run.mjs)."""
    problem = toolchain_problem()
    if problem is not None:
        raise PyodideFailed(problem)
    command = [str(NODE), str(RUNNER)]
    for host, guest in (mounts or {}).items():
        command += ["--mount", f"{Path(host).resolve()}:{guest}"]
    for path in copies:
        command += ["--copy", path]
    if not wheels:
        command.append("--no-wheels")
    command += [str(driver), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            cwd=ROOT, env={**os.environ, "NODE_NO_WARNINGS": "1"}, check=False)
    if check and result.returncode != 0:
        raise PyodideFailed(f"{driver.name} exited {result.returncode} under Pyodide\n"
                            f"--- stdout\n{result.stdout[-5000:]}\n--- stderr\n"
                            f"{result.stderr[-5000:]}")
    return result
