"""A PoP's redemption state: a quote with a snapshot reports generated and spent codes exactly
as a simulation does with the same codes written literally and listed in `spent_coupons`;
snapshots that are not one, or not for this release, are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from control_plane.coupons import RedemptionState, snapshot_body
from edge_worker.core.redemptions import Redemptions, SnapshotError
from edge_worker.core.release import Release
from poprules import api
from poprules.bundle import code_hash
from tests.conftest import ROOT
from wasm_build.lang.catalog import parse_catalog_json
from wasm_build.lang.model import Program
from wasm_build.lang.program import parse_program

KEY = bytes(range(32))
MERCHANT = 7
CATALOG = json.dumps({"currency": "EUR", "items": [
    {"sku": "TEE-01", "title": "Organic tee", "price": "19.90", "category": "apparel"},
    {"sku": "MUG-02", "title": "Clay mug", "price": "7.45", "category": "home"}]})
# `{welcome}` and `{crowd}` are where the reference program lists the generated codes as
# literal ones.
PROGRAM = """\
program: corner-market
currency: EUR
timezone: Europe/Lisbon
coupons:
  - id: welcome
    {welcome}generate: {{count: 4, prefix: "POP-", length: 6}}
    max_redemptions: 100
    per_customer: 1
  - id: summer
    codes: [SUMMER-24]
    max_redemptions: 2
  - id: vip
    codes: [VIP-1]
  - id: old
    codes: [OLD-1]
    expires: 2020-01-01T00:00
    max_redemptions: 1
  - id: crowd
    {crowd}generate: {{count: 2, length: 8}}
rules:
  - id: welcome-off
    coupon: welcome
    items: item.category == "apparel"
    discount: 10%
  - id: summer-off
    coupon: summer
    discount: 5%
  - id: vip-back
    coupon: vip
    cashback: 2%
  - id: old-off
    coupon: old
    discount: 1.00
"""
GENERATED = ["POP-ABC234", "POP-XYZ789", "POP-HJK456", "POP-MNP222"]
CROWD = ["QRSTUVWX"]  # issued for a set no rule needs
GONE = ["GONE-2345"]  # issued for a set this release does not have
CUSTOMER = "c" * 64


def program_of(*, literal: bool = False) -> Program:
    """The program; with `literal`, the generated codes are written as literal codes."""
    def listed(codes: list[str]) -> str:
        return f"codes: {json.dumps(codes)}\n    " if literal else ""

    text = PROGRAM.format(welcome=listed(GENERATED), crowd=listed(CROWD))
    return parse_program(text.encode(), json_syntax=False,
                         catalog=lambda currency: parse_catalog_json(CATALOG.encode(),
                                                                     currency=currency))


@pytest.fixture(scope="module")
def release() -> Release:
    return api.load_release(api.build(program_of(), key=KEY))


def hashes(codes: list[str]) -> list[str]:
    return sorted(code_hash(KEY, c) for c in codes)


# What the control plane would sign: `summer` reached max_redemptions and `old` too (its
# codes listed in `spent`, as the control plane lists every known code of an exhausted set);
# one generated code is listed alone; CUSTOMER used `welcome` up to per_customer.
STATE = RedemptionState(
    program="corner-market",
    issued={"welcome": hashes(GENERATED), "crowd": hashes(CROWD), "gone": hashes(GONE)},
    spent=sorted(hashes(["SUMMER-24", "OLD-1"]) + hashes(["POP-MNP222"])),
    spent_sets=["old", "summer"],
    spent_by_customer={CUSTOMER: ["welcome"]},
)


def body_of(state: RedemptionState = STATE, version: int = 3) -> bytes:
    return snapshot_body(MERCHANT, version, state)


def request_of(coupons: list[str], spent: list[str] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 1}],
                               "coupons": coupons, "at": "2026-07-04T10:00:00Z"}
    if spent is not None:
        request["spent_coupons"] = spent
    return request


CASES = [
    # a generated code, typed loosely; a literal code of an exhausted set; an unknown code
    ["pop-abc 234", "summer-24", "NOPE-1"],
    # expired beats spent; a literal code nobody spent; a code issued for a set the release
    # lacks is unknown
    ["OLD-1", "VIP-1", "GONE-2345"],
    # a generated code spent on its own; one of a set no rule needs; two codes of one set
    ["POP-MNP222", "qrstuvwx", "POP-XYZ789", "POP-HJK456"],
    [],
]


@pytest.mark.parametrize("coupons", CASES)
@pytest.mark.parametrize("customer", [None, CUSTOMER, "d" * 64])
def test_a_quote_with_the_snapshot_is_the_simulation_with_spent_coupons(
        release: Release, coupons: list[str], customer: str | None) -> None:
    redemptions = Redemptions.from_snapshot(body_of(), release=release, merchant=MERCHANT)
    at_pop = release.quote(release.read_request(request_of(coupons)), redemptions=redemptions,
                           customer_hash=customer)
    assert at_pop.pop("release") == {"program": "corner-market", "hash": release.hash}

    spent = ["SUMMER-24", "OLD-1", "POP-MNP222"] + (GENERATED if customer == CUSTOMER else [])
    reference = api.quote(program_of(literal=True), request_of(coupons, spent),
                          engine="python")
    assert at_pop == reference
    assert len(at_pop["coupons"]) == len(coupons)


def test_what_the_snapshot_changes_for_a_shopper(release: Release) -> None:
    redemptions = Redemptions.from_snapshot(body_of(), release=release)
    request = release.read_request(request_of(["pop-abc234", "SUMMER-24", "GONE-2345"]))
    statuses = {c["code"]: c["status"] for c in
                release.quote(request, redemptions=redemptions)["coupons"]}
    assert statuses == {"pop-abc234": "valid", "SUMMER-24": "spent", "GONE-2345": "unknown"}
    for_customer = release.quote(request, redemptions=redemptions, customer_hash=CUSTOMER)
    assert for_customer["coupons"][0]["status"] == "spent"
    # without the snapshot, a generated code is unknown and the request's own list counts
    plain = release.quote(release.read_request(request_of(["pop-abc234", "SUMMER-24"],
                                                          ["summer-24"])))
    assert [c["status"] for c in plain["coupons"]] == ["unknown", "spent"]
    # with it, spent_coupons of the request count for nothing: the state is the PoP's own
    tricked = release.quote(release.read_request(request_of(["VIP-1"], ["VIP-1"])),
                            redemptions=redemptions)
    assert tricked["coupons"] == [{"code": "VIP-1", "status": "valid"}]


def test_lookups(release: Release) -> None:
    redemptions = Redemptions.from_snapshot(body_of(), release=release)
    sets = release.bundle.tables["coupon_sets"]
    assert redemptions.coupon_set("pop-xyz789") == sets.index("welcome")
    assert redemptions.coupon_set("qrstuvwx") == sets.index("crowd")
    assert redemptions.coupon_set("summer-24") == -1  # the release's own code
    assert redemptions.coupon_set("gone-2345") == -1
    assert redemptions.spent("summer-24") and redemptions.spent("pop-mnp222")
    assert not redemptions.spent("pop-xyz789")
    assert redemptions.spent("pop-xyz789", CUSTOMER)
    assert not redemptions.spent("vip-1", CUSTOMER) and not redemptions.spent("nope")
    assert (redemptions.merchant, redemptions.version, redemptions.program) == \
        (MERCHANT, 3, "corner-market")


def _document(**changes: Any) -> bytes:
    document = json.loads(body_of())
    document.update(changes)
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(("body", "message"), [
    (b"\xff", "not a redemption snapshot"),
    (b"[]", "not a poprules-redemptions/1 document"),
    (_document(format="poprules-redemptions/2"), "not a poprules-redemptions/1"),
    (_document(extra=1), "exactly the keys"),
    (body_of().replace(b'"format"', b' "format"'), "canonical"),
    (json.dumps(json.loads(body_of()), sort_keys=True).encode(), "canonical"),
    (_document(version=0), "whole numbers"),
    (_document(merchant=True), "whole numbers"),
    (_document(merchant=8), "merchant 8's, not 7's"),
    (_document(program="other"), "program 'other'"),
    (_document(spent="abc"), "spent must be a list"),
    (_document(issued={"welcome": [1]}), "issued.welcome must be a list of strings"),
    (_document(spent_by_customer=[]), "spent_by_customer must be an object"),
])
def test_what_is_not_a_snapshot_for_this_release_is_refused(
        release: Release, body: bytes, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        Redemptions.from_snapshot(body, release=release, merchant=MERCHANT)


def test_a_snapshot_read_for_another_release_is_refused(release: Release) -> None:
    other = api.load_release(api.build(program_of(), key=bytes(32)))
    redemptions = Redemptions.from_snapshot(body_of(), release=other)
    request = release.read_request(request_of(["POP-ABC234"]))
    with pytest.raises(ValueError, match="another release"):
        release.quote(request, redemptions=redemptions)
    mine = Redemptions.from_snapshot(body_of(), release=release)
    with pytest.raises(TypeError, match="not both"):
        release.quote(request, redemptions=mine, spent=lambda normal: False)


def test_it_imports_with_nothing_but_what_pyodide_offers() -> None:
    blocked = ["wasmtime", "yaml", "click", "nacl", "flask", "sqlalchemy", "control_plane",
               "wasm_build.lang", "wasm_build.reference"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import edge_worker.core.redemptions, edge_worker.core.release\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
