"""`poprules build --target cloudflare`: a deployable Worker directory from a signed release.

    poprules build --target cloudflare --release BUNDLE --signature RELEASE.json \
        --state POP_STATE --out DIR

BUNDLE is the release's bundle (GET .../releases/<n>/bundle), RELEASE.json its JSON (GET
.../releases/<n>: number, hash, key_id, signature), POP_STATE the directory `poprules pop
enroll` wrote for the Worker's PoP (its identity and pinned keyring; its key and secret go to
Worker secrets, never into DIR). DIR gets:

    wrangler.toml          the repository's wrangler.toml with [vars] for this release
    src/entry.py           the Worker's main module (edge_worker/cloudflare/entry.py)
    src/poprules_release.py  the bundle, its signature and the pinned keyring (worker.Built)
    src/rules.wasm         the bundle's rule module, uploaded compiled
    src/rules.mjs          hands the compiled module to Python
    src/poprules/, src/edge_worker/, src/wasm_build/   the portable core
    python_modules/        the vendored Pyodide wheels of .edge/wheels, unpacked

The release is checked exactly as the Worker will check it when imported, so a directory that
builds is one that serves. Nothing is downloaded: the wheels come from the toolchain cache
(scripts/edge_toolchain.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from edge_worker.cloudflare import worker
from edge_worker.core import web
from edge_worker.core.engine import Runner
from edge_worker.host.state import State, StateError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "wrangler.toml"
WHEELS = ROOT / ".edge" / "wheels"
HERE = Path(__file__).resolve().parent
# What the Worker ships of the repository: the portable core, its JS engine adapter and the
# Worker's own modules (tests/edge_worker/pyodide/run.mjs copies the same core).
PORTABLE = ("poprules", "wasm_build/__init__.py", "wasm_build/abi.py", "edge_worker/__init__.py",
            "edge_worker/core", "edge_worker/engines/__init__.py",
            "edge_worker/engines/js_engine.py", "edge_worker/cloudflare")
LEFT_OUT = frozenset({"edge_worker/cloudflare/build.py"})  # the build, not the Worker
MARKER = ".poprules-worker"  # written into DIR, so a rebuild may replace what a build wrote
ENTRY = '''"""The Worker's main module (wrangler.toml `main`): edge_worker/cloudflare/entry.py."""

from edge_worker.cloudflare.entry import Default, ReceiptChain

__all__ = ["Default", "ReceiptChain"]
'''
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class BuildError(Exception):
    """The Worker cannot be built from these inputs; the message says why."""


def build_worker(*, bundle: Path, signature: Path, state: Path, out: Path,
                 config: Path = CONFIG, wheels: Path = WHEELS) -> worker.Built:
    """Write the Worker directory `out` for the release; returns what it ships."""
    try:
        data = bundle.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read the bundle {bundle}: {exc.strerror}") from None
    signed = _signature(signature)
    try:
        pop = State(state)
        identity, keyring = pop.identity(), pop.keyring()
    except StateError as exc:
        raise BuildError(f"the PoP state {state}: {exc}") from None
    built = worker.Built(identity.merchant_id, identity.pop_id, identity.name, signed["number"],
                         signed["hash"], signed["key_id"], signed["signature"], keyring, data)
    try:
        live = worker.load_release(built, _never)
    except worker.ReleaseRefused as exc:
        raise BuildError(str(exc)) from None
    try:
        settings = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"cannot read {config}: {exc}") from None
    vars_ = {"CONTROL_PLANE": identity.control_plane, "MERCHANT_ID": str(built.merchant_id),
             "POP_ID": str(built.pop_id), "RELEASE_NUMBER": str(built.number),
             "RELEASE_HASH": built.hash}
    generated = {**settings, "vars": {**settings.get("vars", {}), **vars_}}
    wheel_files = sorted(wheels.glob("*.whl"))
    if not wheel_files:
        raise BuildError(f"no Pyodide wheels in {wheels}: run scripts/edge_toolchain.sh")

    _fresh(out)
    src = out / "src"
    for path in PORTABLE:
        _copy(ROOT / path, src / path)
    (src / "entry.py").write_text(ENTRY, encoding="utf-8")
    (src / "edge_worker/core/web/_embedded.py").write_text(embedded_assets(), encoding="utf-8")
    (src / f"{worker.RELEASE_MODULE}.py").write_text(built.module_source(), encoding="utf-8")
    (src / "rules.wasm").write_bytes(live.release.bundle.module)
    shutil.copyfile(HERE / "rules.mjs", src / "rules.mjs")
    for wheel in wheel_files:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(out / "python_modules")
    header = (f"# Written by `poprules build --target cloudflare` from {config.name}: release "
              f"{built.number} ({built.hash})\n# of merchant {built.merchant_id} for PoP "
              f"{built.pop_id} ({built.pop_name}). Deploy from this directory.\n\n")
    (out / "wrangler.toml").write_text(header + toml(generated), encoding="utf-8")
    return built


def cli_build(bundle: str | None, signature: str | None, state: str | None,
              out: str | None) -> None:
    """The command line's `build --target cloudflare`: exit 2 with the reason on bad input."""
    given = {"--release": bundle, "--signature": signature, "--state": state, "--out": out}
    missing = [option for option, value in given.items() if value is None]
    if bundle is None or signature is None or state is None or out is None:
        raise click.UsageError(f"--target cloudflare needs {', '.join(missing)}")
    try:
        built = build_worker(bundle=Path(bundle), signature=Path(signature), state=Path(state),
                             out=Path(out))
    except BuildError as exc:
        click.echo(f"poprules build: {exc}", err=True)
        sys.exit(2)
    click.echo(f"{out}: Worker of PoP {built.pop_id} ({built.pop_name}) for release "
               f"{built.number} ({built.hash}) of merchant {built.merchant_id}")


def _never() -> Runner:
    raise AssertionError("the build never runs the rule module")


def _signature(path: Path) -> dict[str, Any]:
    """The release's number, hash, key id and signature, from its JSON as the control plane
    answers GET /v1/merchants/<m>/releases/<n>."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read the release JSON {path}: {exc}") from None
    if not isinstance(document, dict):
        raise BuildError(f"{path}: expected the release's JSON object")
    kinds = {"number": int, "hash": str, "key_id": str, "signature": str}
    for key, kind in kinds.items():
        if type(document.get(key)) is not kind:
            raise BuildError(f"{path}: `{key}` is missing or not a {kind.__name__}")
    return {key: document[key] for key in kinds}


def _fresh(out: Path) -> None:
    """An empty `out`: created, or emptied when an earlier build wrote it; anything else
    that is there is the operator's, and stays."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists()):
            raise BuildError(f"{out} exists and is not a Worker directory this command wrote; "
                             "give an empty or new directory")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `poprules build --target cloudflare`\n",
                              encoding="utf-8")


def embedded_assets() -> str:
    """edge_worker/core/web's files as a module: a Worker reads no files (web.asset)."""
    lines = [f"{name!r}: {web.asset(name)!r}," for name in sorted(web.TYPES)]
    return ('"""Written by `poprules build --target cloudflare` from edge_worker/core/web."""\n\n'
            "ASSETS = {\n    " + "\n    ".join(lines) + "\n}\n")


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        for path in sorted(source.rglob("*.py")):
            if "__pycache__" not in path.parts and str(path.relative_to(ROOT)) not in LEFT_OUT:
                _copy(path, target / path.relative_to(source))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def toml(document: Mapping[str, Any]) -> str:
    """TOML for a wrangler configuration (strings, numbers, booleans, arrays, tables and
    arrays of tables); the standard library reads TOML but does not write it."""
    lines: list[str] = []
    _table(lines, (), document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    nested = []
    for key, value in table.items():
        if isinstance(value, dict) or _tables(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested:
        name = ".".join(_key(part) for part in (*path, key))
        if isinstance(value, dict):
            scalars = any(not (isinstance(v, dict) or _tables(v)) for v in value.values())
            if scalars or not value:
                lines += ["", f"[{name}]"]
            _table(lines, (*path, key), value)
        else:
            for item in value:
                lines += ["", f"[[{name}]]"]
                _table(lines, (*path, key), item)


def _tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")
