"""`poprules build --target cloudflare` and the wrangler configurations (issue 7): the Worker
directory it writes, what it refuses, both wrangler.toml files against wrangler's own schema,
and `wrangler deploy --dry-run` on a built directory, offline."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from click.testing import CliRunner

from edge_worker.cloudflare import build, worker
from poprules.bundle import decode
from poprules.cli import main
from tests.edge_worker.cloudflare.conftest import Shop
from tests.edge_worker.pyodide.harness import EDGE, toolchain_problem

SCHEMA = EDGE / "node_modules" / "wrangler" / "config-schema.json"
WRANGLER = EDGE / "bin" / "wrangler"


def toolchain() -> None:
    problem = toolchain_problem()
    if problem is not None or not SCHEMA.exists():
        pytest.fail(problem or f"{SCHEMA} is missing: run scripts/edge_toolchain.sh",
                    pytrace=False)


def schema_errors(config: dict[str, Any]) -> list[str]:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    return [f"{list(error.instance_path)}: {error.message}"
            for error in validator.iter_errors(config)]


def test_the_worker_directory_holds_the_entry_core_release_module_and_wheels(
        built: tuple[Path, worker.Built], shop: Shop) -> None:
    out, data = built
    src = out / "src"
    assert (src / "rules.wasm").read_bytes() == decode(shop.bundle.read_bytes()).module
    assert (src / "rules.mjs").read_text() == (build.HERE / "rules.mjs").read_text()
    assert "from edge_worker.cloudflare.entry import Default, ReceiptChain" in \
        (src / "entry.py").read_text()
    for module in ("edge_worker/core/pop.py", "edge_worker/engines/js_engine.py",
                   "edge_worker/cloudflare/entry.py", "edge_worker/cloudflare/worker.py",
                   "poprules/receipt.py", "wasm_build/abi.py"):
        assert (src / module).read_bytes() == (build.ROOT / module).read_bytes(), module
    for absent in ("edge_worker/cloudflare/build.py", "edge_worker/host",
                   "edge_worker/engines/wasmtime_engine.py", "wasm_build/emit.py"):
        assert not (src / absent).exists(), absent
    assert data.pop_id == shop.pop_id and data.bundle == shop.bundle.read_bytes()
    assert (src / f"{worker.RELEASE_MODULE}.py").read_text() == data.module_source()
    for wheel in sorted((EDGE / "wheels").glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                assert (out / "python_modules" / name).exists(), name
    assert (out / "python_modules" / "workers" / "__init__.py").exists()
    assert list((out / "python_modules" / "msgpack").glob("*.so"))
    config = tomllib.loads((out / "wrangler.toml").read_text())
    assert config["vars"] == {"CONTROL_PLANE": "http://control-plane.invalid",
                              "MERCHANT_ID": str(data.merchant_id), "POP_ID": str(data.pop_id),
                              "RELEASE_NUMBER": "1", "RELEASE_HASH": data.hash}
    root = tomllib.loads(build.CONFIG.read_text())
    assert {k: v for k, v in config.items() if k != "vars"} == \
        {k: v for k, v in root.items() if k != "vars"}


def test_a_rebuild_replaces_its_own_directory_but_never_someone_elses(
        built: tuple[Path, worker.Built], shop: Shop, tmp_path: Path) -> None:
    out, _ = built
    (out / "src" / "stale.py").write_text("")
    again = build.build_worker(bundle=shop.bundle, signature=shop.release_json,
                               state=shop.state, out=out)
    assert again.number == 1 and not (out / "src" / "stale.py").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(build.BuildError, match="not a Worker directory"):
        build.build_worker(bundle=shop.bundle, signature=shop.release_json, state=shop.state,
                           out=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_release_that_does_not_check_out_builds_nothing(shop: Shop, tmp_path: Path) -> None:
    release = json.loads(shop.release_json.read_text())
    cases = {"number": {**release, "number": 2}, "signature": {**release, "signature": "0" * 128},
             "key_id": {**release, "key_id": "feedfacefeedface"}, "hash": {"number": 1}}
    for name, document in cases.items():
        signature = tmp_path / f"{name}.json"
        signature.write_text(json.dumps(document))
        out = tmp_path / f"out-{name}"
        with pytest.raises(build.BuildError):
            build.build_worker(bundle=shop.bundle, signature=signature, state=shop.state,
                               out=out)
        assert not out.exists(), name
    with pytest.raises(build.BuildError, match="PoP state"):
        build.build_worker(bundle=shop.bundle, signature=shop.release_json,
                           state=tmp_path / "nowhere", out=tmp_path / "out")
    with pytest.raises(build.BuildError, match="no Pyodide wheels"):
        build.build_worker(bundle=shop.bundle, signature=shop.release_json, state=shop.state,
                           out=tmp_path / "out", wheels=tmp_path)


def test_the_command_line_builds_and_says_what_is_missing(shop: Shop, tmp_path: Path) -> None:
    out = tmp_path / "cli-worker"
    runner = CliRunner()
    done = runner.invoke(main, ["build", "--target", "cloudflare", "--release", str(shop.bundle),
                                "--signature", str(shop.release_json), "--state",
                                str(shop.state), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert f"Worker of PoP {shop.pop_id}" in done.output and (out / "wrangler.toml").exists()
    missing = runner.invoke(main, ["build", "--target", "cloudflare", "--release",
                                   str(shop.bundle)])
    assert missing.exit_code == 2 and "--signature, --state, --out" in missing.output
    refused = runner.invoke(main, ["build", "--target", "cloudflare", "--release",
                                   str(shop.release_json), "--signature", str(shop.release_json),
                                   "--state", str(shop.state), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "poprules build:" in refused.output
    assert runner.invoke(main, ["build", "program.yaml"]).exit_code == 2


def test_the_toml_writer_round_trips_the_projects_configuration() -> None:
    root = tomllib.loads(build.CONFIG.read_text())
    assert tomllib.loads(build.toml(root)) == root
    odd = {"a b": "quote \" and \\ and é", "n": [1, 2.5, True], "t": {"inline": {"x": 1}},
           "list": [{"k": "v", "sub": {"deep": False}}, {"k": "w"}], "empty": {}}
    assert tomllib.loads(build.toml(odd)) == odd


def test_both_wrangler_configurations_pass_wranglers_schema(
        built: tuple[Path, worker.Built]) -> None:
    toolchain()
    out, _ = built
    for path in (build.CONFIG, out / "wrangler.toml"):
        config = tomllib.loads(path.read_text())
        assert schema_errors(config) == [], path
    broken = {**tomllib.loads(build.CONFIG.read_text()), "compatibility_flags": "python_workers"}
    assert schema_errors(broken)  # the check can fail


def test_wrangler_deploy_dry_run_accepts_the_built_worker_offline(
        built: tuple[Path, worker.Built], tmp_path: Path) -> None:
    toolchain()
    out, data = built
    dist = tmp_path / "dist"
    done = subprocess.run(
        [str(WRANGLER), "deploy", "--dry-run", "--outdir", str(dist)], cwd=out,
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "1",
             "HOME": str(tmp_path), "NO_COLOR": "1"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "--dry-run: exiting now." in output
    for module, kind in (("entry.py", "python"), ("rules.wasm", "compiled-wasm"),
                         ("rules.mjs", "esm"), (f"{worker.RELEASE_MODULE}.py", "python"),
                         ("edge_worker/cloudflare/worker.py", "python")):
        assert any(module in line and kind in line for line in output.splitlines()), module
    assert "env.CHAIN (ReceiptChain)" in output and "env.RECEIPTS (poprules-receipts)" in output
    assert f'env.RELEASE_NUMBER ("{data.number}")' in output
    assert "WARNING" not in output, output
