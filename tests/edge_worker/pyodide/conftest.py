"""The `pyodide` fixture: the harness, or a failure saying how to install it (never a skip:
CI installs the toolchain through `make test`, so a missing one is a broken setup)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.edge_worker.pyodide.harness import run_pyodide, toolchain_problem


@pytest.fixture(scope="session")
def pyodide() -> Callable[..., Any]:
    problem = toolchain_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    return run_pyodide
