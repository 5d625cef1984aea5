"""Every wheel vendored into the Worker fits the Pyodide runtime, as pyodide-build judges it
(scripts/check_wheels.py, run by scripts/edge_toolchain.sh with the pyodide-build venv of
.edge/pyodide-build/).

The wheels that must be refused are made here with zipfile (nothing is downloaded at test
time), each carrying a well-formed WebAssembly side module unless its code is what is wrong,
so that only the property under test can refuse it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.edge_worker.pyodide.harness import EDGE, INSTALL_HINT, ROOT

CHECKER = ROOT / "scripts" / "check_wheels.py"
PYTHON = EDGE / "pyodide-build" / "bin" / "python"
RUNTIME = EDGE / "node_modules" / "pyodide"
MSGPACK = "msgpack-1.2.4-cp314-cp314-pyemscripten_2026_0_wasm32.whl"
FITS = "cp314-cp314-pyemscripten_2026_0_wasm32"

Check = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def check() -> Check:
    """Runs the checker the way the toolchain does; fails (never skips) when it is missing."""
    for path in (PYTHON, RUNTIME / "pyodide-lock.json", EDGE / "wheels" / MSGPACK):
        if not path.exists():
            pytest.fail(f"the pyodide-build toolchain is missing ({path} does not exist): "
                        f"{INSTALL_HINT}", pytrace=False)

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PYTHON), str(CHECKER), *map(str, args)], capture_output=True,
                              text=True, timeout=120, check=False)

    return run


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sized(data: bytes) -> bytes:
    return uleb(len(data)) + data


def side_module(needed: tuple[str, ...] = (), runtime_paths: tuple[str, ...] = ()) -> bytes:
    """The smallest WebAssembly side module: a `dylink.0` custom section (memory info, needed
    libraries, runtime paths), as Emscripten writes first in every `.so` for Pyodide."""
    def strings(items: tuple[str, ...]) -> bytes:
        return uleb(len(items)) + b"".join(sized(item.encode()) for item in items)

    section = sized(b"dylink.0") + uleb(1) + sized(uleb(0) * 4)
    if needed:
        section += uleb(2) + sized(strings(needed))
    if runtime_paths:
        section += uleb(5) + sized(strings(runtime_paths))
    return b"\0asm\x01\0\0\0" + b"\x00" + sized(section)


def wheel(directory: Path, name: str, files: dict[str, bytes]) -> Path:
    path = directory / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def test_vendored_wheels_fit_the_runtime(check: Check) -> None:
    result = check()
    assert result.returncode == 0, result.stderr
    vendored = sorted(path.name for path in (EDGE / "wheels").glob("*.whl"))
    fits = "fits Pyodide 314.0.6 (Python 3.14.2, Emscripten 5.0.3, ABI 2026_0)"
    assert result.stdout.splitlines() == [
        f"check_wheels: ok {name}: {fits}; "
        + ("1 WebAssembly side module(s)" if name == MSGPACK else "no compiled code")
        for name in vendored]
    assert any(name.startswith("workers_runtime_sdk-") for name in vendored)


@pytest.mark.parametrize("tags", [
    "cp314-cp314-manylinux_2_17_x86_64",     # CPython's own msgpack wheel for Linux
    "cp314-cp314-macosx_11_0_arm64",
    "cp313-cp313-pyemscripten_2026_0_wasm32",  # the right platform, another Python
    "cp314-cp314-pyemscripten_2025_0_wasm32",  # the right Python, another Pyodide ABI
    "cp312-abi3-manylinux_2_17_x86_64",      # abi3 but native: pyodide-lock's check takes it
    "cp314-cp314t-pyemscripten_2026_0_wasm32",  # the free-threaded ABI
])
def test_refuses_a_wheel_for_another_platform_python_or_abi(check: Check, tmp_path: Path,
                                                            tags: str) -> None:
    bad = wheel(tmp_path, f"msgpack-1.2.4-{tags}.whl", {"msgpack/_c.so": side_module()})
    result = check(bad)
    assert result.returncode == 1
    assert f"REFUSED {bad.name}: its tags {tags} are none of the" in result.stderr
    assert "platforms any, emscripten_5_0_3_wasm32, pyemscripten_2026_0_wasm32" in result.stderr
    assert "1 of 1 wheels cannot run on Pyodide 314.0.6" in result.stderr


@pytest.mark.parametrize(("name", "files", "why"), [
    (f"fake-1.0-{FITS}.whl", {"fake/_c.so": b"\x7fELF\x02\x01\x01" + bytes(57)},
     "a shared library is not a WebAssembly side module: fake/_c.so is not a WASM file"),
    ("fake-1.0-py3-none-any.whl", {"fake/_c.abi3.so": b"\x7fELF\x02\x01\x01"},
     "a shared library is not a WebAssembly side module: fake/_c.abi3.so is not a WASM file"),
    (f"fake-1.0-{FITS}.whl", {"fake/_c.so": b"\0asm\x01\0\0\0"},
     "a shared library is WebAssembly without a dylink section"),
    (f"fake-1.0-{FITS}.whl", {"fake/_c.so": side_module(needed=("libfoo.so",))},
     "fake/_c.so needs libfoo.so, which the wheel does not carry"),
    ("fake-1.0.whl", {"fake/__init__.py": b""}, "not a valid wheel file name"),
])
def test_refuses_code_pyodide_cannot_load(check: Check, tmp_path: Path, name: str,
                                          files: dict[str, bytes], why: str) -> None:
    bad = wheel(tmp_path, name, files)
    result = check(bad)
    assert result.returncode == 1
    assert f"REFUSED {name}: {why}" in result.stderr


def test_accepts_a_side_module_whose_library_the_wheel_carries(check: Check,
                                                               tmp_path: Path) -> None:
    good = wheel(tmp_path, f"fake-1.0-{FITS}.whl", {
        "fake/__init__.py": b"",
        "fake/_c.so": side_module(needed=("libfoo.so",), runtime_paths=("$ORIGIN/../fake.libs",)),
        "fake.libs/libfoo.so": side_module(),
    })
    pure = wheel(tmp_path, "other-2.0-py3-none-any.whl", {"other/__init__.py": b""})
    result = check(good, pure)
    assert result.returncode == 0, result.stderr
    assert f"ok {good.name}: fits Pyodide 314.0.6" in result.stdout
    assert "2 WebAssembly side module(s)" in result.stdout
    assert f"ok {pure.name}: fits Pyodide 314.0.6" in result.stdout


def test_the_runtime_lock_sets_what_fits(check: Check, tmp_path: Path) -> None:
    """The tags come from the runtime's pyodide-lock.json, not from the checker: against a
    Pyodide of Python 3.13 and ABI 2025_0, the vendored msgpack is refused."""
    lock = json.loads((RUNTIME / "pyodide-lock.json").read_text())
    lock["info"].update(python="3.13.2", platform="emscripten_4_0_9", abi_version="2025_0")
    older = tmp_path / "pyodide"
    older.mkdir()
    (older / "pyodide-lock.json").write_text(json.dumps(lock))
    (older / "package.json").write_text(json.dumps({"version": "0.29.3"}))
    shutil.copy(EDGE / "wheels" / MSGPACK, tmp_path / MSGPACK)
    result = check("--runtime", older, tmp_path / MSGPACK)
    assert result.returncode == 1
    assert f"REFUSED {MSGPACK}: its tags {FITS} are none of the" in result.stderr
    assert "pyemscripten_2025_0_wasm32" in result.stderr
    assert "cannot run on Pyodide 0.29.3 (Python 3.13.2, Emscripten 4.0.9, ABI 2025_0)" \
        in result.stderr


def test_nothing_to_check_is_an_error(check: Check, tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.returncode == 2
    assert f"cannot check: no wheels in {tmp_path}" in result.stderr
    result = check("--runtime", tmp_path, EDGE / "wheels")
    assert result.returncode == 2
    assert "pyodide-lock.json does not exist" in result.stderr
