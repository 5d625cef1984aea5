"""The committed runtime.wasm is what its sources build to, byte for byte (the build installs
clang and lld from Debian's packages when they are missing)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_the_committed_runtime_is_rebuilt_identically() -> None:
    done = subprocess.run([sys.executable, "-m", "wasm_build.runtime.build", "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
