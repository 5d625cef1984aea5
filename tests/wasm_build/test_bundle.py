"""The release bundle: reproducible bytes, a manifest that covers every part, no coupon code
in clear, and a module that follows the ABI's memory layout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from poprules import api
from poprules import bundle as fmt
from tests.conftest import catalog_of, example_dirs
from wasm_build import abi
from wasm_build.emit import emit, runtime_module
from wasm_build.plan import plan

EXAMPLE = next(p for p in example_dirs() if p.name.startswith("10-"))


def built(case: Path = EXAMPLE) -> bytes:
    return api.build(api.load(case / "program.yaml", catalog_of(case)))


_BUILD_IN_ANOTHER_PROCESS = """
import hashlib, sys
from poprules import api
from wasm_build.lang.catalog import parse_catalog_json
from wasm_build.lang.program import parse_program
from wasm_build.random_program import generate_program
digests = [hashlib.sha256(api.build(api.load(sys.argv[1], sys.argv[2]))).hexdigest()]
for seed in range(12):  # generated catalogs give items several tags: set order is exercised
    g = generate_program(seed, rules=30, items=120)
    program = parse_program(g.program_yaml.encode(), json_syntax=False, catalog=lambda c:
                            parse_catalog_json(g.catalog_json.encode(), currency=c))
    digests.append(hashlib.sha256(api.build(program)).hexdigest())
sys.stdout.write(" ".join(digests))
"""


def test_the_same_inputs_give_the_same_bytes_across_processes() -> None:
    """Every set the planner walks must be walked in a fixed order: Python's hash seed
    changes set order between processes, and a bundle must not change with it."""
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _BUILD_IN_ANOTHER_PROCESS,
                              str(EXAMPLE / "program.yaml"), str(catalog_of(EXAMPLE))],
                             env=env, capture_output=True, text=True, check=True, timeout=300)
        outputs.add(out.stdout)
    assert len(outputs) == 1
    assert outputs.pop().split()[0] == __import__("hashlib").sha256(built()).hexdigest()


def test_manifest_names_every_part_and_the_release_hash_covers_it() -> None:
    bundle = fmt.decode(built())
    assert bundle.manifest["format"] == fmt.FORMAT
    assert bundle.manifest["abi"] == abi.ABI_VERSION
    assert bundle.manifest["program"] == "welcome-shop"
    assert set(bundle.manifest["parts"]) == {*fmt.PARTS, *fmt.OPTIONAL_PARTS}
    assert bundle.release_hash == fmt.digest(fmt.pack(bundle.manifest))
    assert bundle.release_hash.startswith("sha256:")


@pytest.mark.parametrize("part", [*fmt.PARTS, *fmt.OPTIONAL_PARTS])
def test_a_changed_part_is_refused(part: str) -> None:
    document = fmt.unpack(built())
    blob = bytearray(document[part])
    blob[len(blob) // 2] ^= 0x01
    document[part] = bytes(blob)
    with pytest.raises(fmt.BundleError, match=part):
        fmt.decode(fmt.pack(document))


def test_the_storefront_is_the_catalog_and_rules_and_may_be_absent() -> None:
    bundle = fmt.decode(built())
    front = bundle.storefront()
    assert sorted(sku for sku, _, _ in front["items"]) == sorted(bundle.tables["skus"])
    assert all(isinstance(title, str) and isinstance(price, int)
               for _, title, price in front["items"])
    assert sorted(rule[0] for rule in front["rules"]) == sorted(
        r["id"] for r in bundle.tables["rules"])
    older = fmt.unpack(built())  # a bundle from before the part existed
    del older["storefront"]
    del older["manifest"]["parts"]["storefront"]
    assert fmt.decode(fmt.pack(older)).storefront() == {"items": [], "rules": []}
    unlisted = fmt.unpack(built())
    del unlisted["manifest"]["parts"]["storefront"]
    with pytest.raises(fmt.BundleError, match="storefront"):
        fmt.decode(fmt.pack(unlisted))


def test_garbage_and_other_formats_are_refused() -> None:
    with pytest.raises(fmt.BundleError):
        fmt.decode(b"\x00asm not a bundle")
    document = fmt.unpack(built())
    document["manifest"]["format"] = "poprules-bundle/99"
    with pytest.raises(fmt.BundleError, match="unsupported bundle format"):
        fmt.decode(fmt.pack(document))


def test_no_coupon_code_is_in_clear() -> None:
    complete = next(p for p in example_dirs() if p.name.startswith("11-"))
    assert b"summer-24" not in built(complete).lower()
    data = built()
    for rule in fmt.decode(data).tables["rules"]:  # welcome-10 is also a rule id
        data = data.replace(fmt.pack(rule["id"]), b"")
    for code in (b"welcome-10", b"spring-15"):
        assert code not in data.lower()
    bundle = fmt.decode(built())
    key = bundle.coupons["key"]
    assert bundle.coupons["codes"] == {
        fmt.code_hash(key, "WELCOME-10"): 0, fmt.code_hash(key, "SPRING-15"): 1,
    }
    assert fmt.code_hash(key, " welcome-10 ") == fmt.code_hash(key, "WELCOME-10")


def test_the_module_holds_the_image_with_fixed_memory() -> None:
    program = api.load(EXAMPLE / "program.yaml", catalog_of(EXAMPLE))
    planned = plan(program)
    module = emit(planned.words)
    engine = wasmtime.Engine()
    compiled = wasmtime.Module(engine, module)
    assert [i.name for i in compiled.imports] == []
    exports = {e.name: e.type for e in compiled.exports}
    assert isinstance(exports["memory"], wasmtime.MemoryType)
    limits = exports["memory"].limits
    assert limits.min == limits.max
    store = wasmtime.Store(engine)
    memory = wasmtime.Instance(store, compiled, []).exports(store)["memory"]
    assert isinstance(memory, wasmtime.Memory)
    raw = memory.read(store, abi.IMAGE_BASE, abi.IMAGE_BASE + 8 * len(planned.words))
    assert list(memoryview(raw).cast("q")) == list(planned.words)
    end = abi.IMAGE_BASE + 8 * (len(planned.words) + planned.words[abi.H_SCRATCH_WORDS])
    assert limits.min * abi.PAGE >= end


def test_the_runtime_is_the_one_the_abi_describes() -> None:
    header = (Path(abi.__file__).parent / "runtime" / "abi.h").read_text()
    assert header == abi.c_header()
    assert runtime_module().startswith(b"\x00asm")
