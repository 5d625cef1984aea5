"""Check every wheel vendored into the Worker against the Pyodide runtime it runs on.

    .edge/pyodide-build/bin/python scripts/check_wheels.py [--runtime DIR] [WHEEL_OR_DIR ...]

Defaults: the runtime `.edge/node_modules/pyodide` (npm `pyodide`, what workerd bundles) and the
wheels of `.edge/wheels`. Prints one line per wheel; exits 1 naming each wheel that does not fit
and why, 2 when nothing can be checked. `scripts/edge_toolchain.sh` runs it after every install.

The checks are pyodide-build's, not ours, so they stay right when Pyodide's platform tags move
(they moved from `emscripten_*` to `pyodide_*` to `pyemscripten_*` within two years):

1. Tags: `pyodide_build.build_env.pyodide_tags()` is the list `pyodide build` uses to pick a
   wheel for its target, and `pyodide_build.common.find_matching_wheel` matches against it.
   pyodide-build reads its target from a cross-build environment (xbuildenv), which it
   downloads from Pyodide's GitHub releases — not a package registry, so not reachable here.
   `pyodide_tags()` reads exactly five of its variables (PYMAJOR, PYMINOR, PYMICRO,
   PYODIDE_EMSCRIPTEN_VERSION, PYODIDE_ABI_VERSION) from the xbuildenv's `Makefile.envs`;
   the runtime's own `pyodide-lock.json` carries the same facts (`info.python`,
   `info.platform`, `info.abi_version`), so this script writes them into a `Makefile.envs` in
   a scratch directory (the layout of pyodide-build's own test fixture) and points
   PYODIDE_ROOT at it. The target is then the runtime in `.edge/`, not whatever xbuildenv
   pyodide-build would pick for its own version.
2. Code: auditwheel-emscripten (`pyodide auditwheel`, a pyodide-build dependency) reads every
   shared library in the wheel; each must be a WebAssembly side module (a `dylink.0` section)
   whose needed libraries the wheel itself carries, or Pyodide cannot load it.

Not used: pyodide-lock's wheel check (`pyodide lockfile add-wheels`) compares against
`<info.platform>_<info.arch>` only, so it refuses this runtime's `pyemscripten_2026_0_wasm32`
wheels (msgpack's among them), and it accepts any `abi3` wheel whatever its platform.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from auditwheel_emscripten.show import locate_dependency, show_wheel_unpacked
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from pyodide_build.common import find_matching_wheel
from pyodide_build.config import BUILD_VAR_TO_KEY
from pyodide_lock import PyodideLockSpec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNTIME = ROOT / ".edge" / "node_modules" / "pyodide"
DEFAULT_WHEELS = ROOT / ".edge" / "wheels"

MAKEFILE_ENVS = """\
export PYMAJOR={major}
export PYMINOR={minor}
export PYMICRO={micro}
export PYODIDE_EMSCRIPTEN_VERSION={emscripten}
export PYODIDE_ABI_VERSION={abi}

.output_vars:
\tset
"""


class CannotCheck(Exception):
    """The runtime or the wheels are missing or unreadable: nothing was checked."""


@dataclass(frozen=True)
class Runtime:
    """What a wheel must fit, as the runtime's pyodide-lock.json states it."""

    version: str
    python: str
    emscripten: str
    abi: str

    def __str__(self) -> str:
        return (f"Pyodide {self.version} (Python {self.python}, Emscripten {self.emscripten}, "
                f"ABI {self.abi})")


def read_runtime(runtime_dir: Path) -> Runtime:
    lock_path = runtime_dir / "pyodide-lock.json"
    if not lock_path.is_file():
        raise CannotCheck(f"{lock_path} does not exist: install the toolchain "
                          "(bash scripts/edge_toolchain.sh)")
    info = PyodideLockSpec.from_json(lock_path).info
    if info.arch != "wasm32" or not info.platform.startswith("emscripten_"):
        # pyodide-build targets wasm32 Emscripten only.
        raise CannotCheck(f"{lock_path}: platform {info.platform} on {info.arch} is not "
                          "Emscripten on wasm32, the only target pyodide-build knows")
    if not info.abi_version:
        raise CannotCheck(f"{lock_path} names no abi_version (a Pyodide older than 0.28?)")
    package_json = runtime_dir / "package.json"
    version = (json.loads(package_json.read_text())["version"] if package_json.is_file()
               else info.version)
    return Runtime(version=version, python=info.python,
                   emscripten=info.platform.removeprefix("emscripten_").replace("_", "."),
                   abi=info.abi_version)


@contextlib.contextmanager
def pyodide_root(runtime: Runtime) -> Iterator[Path]:
    """A scratch PYODIDE_ROOT whose Makefile.envs describes `runtime`, with nothing else
    allowed to steer pyodide-build: its configuration takes environment variables over
    Makefile.envs, and a pyproject.toml's [tool.pyodide.build] (found from the working
    directory) can switch the platform tags, so both are shut out while it runs."""
    major, minor, micro = (runtime.python.split(".") + ["0", "0"])[:3]
    saved = {name: os.environ.pop(name) for name in list(os.environ)
             if name in BUILD_VAR_TO_KEY or name == "PYODIDE_ROOT"}
    try:
        with tempfile.TemporaryDirectory(prefix="check-wheels-") as scratch:
            root = Path(scratch) / "pyodide-root"
            root.mkdir()
            (root / "Makefile.envs").write_text(MAKEFILE_ENVS.format(
                major=major, minor=minor, micro=micro, emscripten=runtime.emscripten,
                abi=runtime.abi))
            os.environ["PYODIDE_ROOT"] = str(root)
            with contextlib.chdir(root):
                yield root
    finally:
        os.environ.pop("PYODIDE_ROOT", None)
        os.environ.update(saved)


def runtime_tags(runtime: Runtime) -> Sequence[Tag]:
    with pyodide_root(runtime):
        from pyodide_build import build_env  # reads PYODIDE_ROOT when first asked

        return build_env.pyodide_tags()


def check_tags(wheel: Path, tags: Sequence[Tag]) -> str | None:
    """Why the wheel's file name rules it out for the runtime, or None."""
    try:
        _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
    except (InvalidWheelFilename, ValueError) as error:
        return f"not a valid wheel file name ({error})"
    if find_matching_wheel([wheel], tags) is not None:
        return None
    platforms = ", ".join(sorted({tag.platform for tag in tags}))
    abis = ", ".join(sorted({tag.abi for tag in tags}))
    return (f"its tags {', '.join(sorted(map(str, wheel_tags)))} are none of the {len(tags)} "
            f"this runtime accepts (ABIs {abis}; platforms {platforms})")


def check_code(wheel: Path) -> tuple[str | None, int]:
    """(why the wheel's shared libraries cannot load in Pyodide or None, how many it has)."""
    with tempfile.TemporaryDirectory(prefix="check-wheels-") as scratch:
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(scratch)
        except zipfile.BadZipFile as error:
            return f"not a zip archive ({error})", 0
        try:
            libraries = show_wheel_unpacked(scratch)
        except RuntimeError as error:  # a file that is not WebAssembly at all
            detail = str(error).replace(f"{scratch}{os.sep}", "")
            return f"a shared library is not a WebAssembly side module: {detail}", 0
        except (AssertionError, SystemExit, StopIteration):
            # auditwheel-emscripten's parser stops this way (sys.exit included) on WebAssembly
            # that does not start with a dylink section: a main module or plain wasm.
            return ("a shared library is WebAssembly without a dylink section, so not a side "
                    "module Pyodide can load"), 0
    for library, (needed, runtime_paths) in libraries.items():
        missing = [dep for dep in needed
                   if locate_dependency(library, dep, list(libraries), runtime_paths) is None]
        if missing:
            return (f"{library} needs {', '.join(missing)}, which the wheel does not carry "
                    "(`pyodide auditwheel repair` copies them in)"), len(libraries)
    return None, len(libraries)


def wheels_in(paths: Sequence[Path]) -> list[Path]:
    wheels: list[Path] = []
    for path in paths:
        if path.is_dir():
            wheels += sorted(path.glob("*.whl"))
        elif path.is_file():
            wheels.append(path)
        else:
            raise CannotCheck(f"{path} does not exist")
    if not wheels:
        raise CannotCheck(f"no wheels in {', '.join(map(str, paths))}")
    return wheels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runtime", type=Path, default=DEFAULT_RUNTIME,
                        help="the pyodide npm package directory (holds pyodide-lock.json)")
    parser.add_argument("wheels", type=Path, nargs="*", default=[DEFAULT_WHEELS],
                        help="wheel files or directories of them")
    args = parser.parse_args(argv)
    try:
        runtime = read_runtime(args.runtime)
        wheels = wheels_in(args.wheels)
    except CannotCheck as error:
        print(f"check_wheels: cannot check: {error}", file=sys.stderr)
        return 2
    tags = runtime_tags(runtime)
    refused = 0
    for wheel in wheels:
        problem = check_tags(wheel, tags)
        libraries = 0
        if problem is None:
            problem, libraries = check_code(wheel)
        if problem is None:
            code = (f"{libraries} WebAssembly side module(s)" if libraries
                    else "no compiled code")
            print(f"check_wheels: ok {wheel.name}: fits {runtime}; {code}")
        else:
            refused += 1
            print(f"check_wheels: REFUSED {wheel.name}: {problem}", file=sys.stderr)
    if refused:
        print(f"check_wheels: {refused} of {len(wheels)} wheels cannot run on {runtime}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
