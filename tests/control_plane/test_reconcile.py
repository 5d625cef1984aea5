"""Reconciliation: per PoP, receipts issued (by chain seq) against received, booked, flagged
and held, with every gap named; over the API and as `poprules reconcile POP`."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from nacl.signing import SigningKey
from werkzeug.serving import make_server

from poprules import receipt as fmt
from poprules.cli import main
from tests.control_plane.conftest import Plane, error_of, start_app
from tests.control_plane.test_receipts import PLAIN, Shop, Stall, make_shop


def reconciliation(shop: Shop, stall: Stall, query: str = "",
                   token: str | None = None) -> Any:
    return shop.plane.call("GET", f"/v1/pops/{stall.pop_id}/reconciliation{query}",
                           shop.account.token if token is None else token)


def mixed_day(stall: Stall) -> None:
    """Seq 1 booked, 2 flagged (amounts), 3 never arrives, 4 held (gap), 5 forged (rejected,
    not stored), 6 and 7 still in the PoP's outbox."""
    one = stall.sale(PLAIN)
    quote = copy.deepcopy(stall.quote(PLAIN, []))
    quote["totals"]["points"] += 10
    two = stall.sale(PLAIN, quote=quote)
    stall.sale(PLAIN)
    four = stall.sale(PLAIN)
    five = stall.sign(stall.sale(PLAIN).fields, SigningKey.generate())
    assert [r["status"] for r in stall.results(one, two, four, five)] == [
        "booked", "flagged", "held", "rejected"]


@pytest.fixture
def shop(plane: Plane) -> Shop:
    return make_shop(plane)


def test_it_counts_each_fate_and_names_every_gap(shop: Shop) -> None:
    stall = shop.enroll("stall-1")
    mixed_day(stall)
    response = reconciliation(shop, stall)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    flags = answer.pop("flags")
    assert answer == {"pop": stall.pop_id, "name": "stall-1", "issued": 4, "received": 3,
                      "booked": 1, "flagged": 1, "held": 1, "gaps": [[3, 3]]}
    assert [(f["seq"], f["id"], f["status"]) for f in flags] == [
        (2, fmt.receipt_id(stall.pop_id, 2), "flagged"),
        (4, fmt.receipt_id(stall.pop_id, 4), "held")]
    assert flags[0]["reason"].startswith("amounts differ from release 1")
    assert flags[1]["reason"] == (f"waiting for receipt {fmt.receipt_id(stall.pop_id, 3)}, "
                                  "missing from the chain before it")
    # The stall owner's own count names the receipts that never left the PoP, too.
    later = reconciliation(shop, stall, "?issued=7").get_json()
    assert (later["issued"], later["gaps"]) == (7, [[3, 3], [5, 7]])
    # A count below what was received does not hide anything.
    assert reconciliation(shop, stall, "?issued=2").get_json()["issued"] == 4


def test_gaps_at_the_start_and_on_an_empty_chain(shop: Shop) -> None:
    stall = shop.enroll("stall-1")
    empty = reconciliation(shop, stall).get_json()
    assert (empty["issued"], empty["received"], empty["gaps"], empty["flags"]) == (0, 0, [], [])
    assert reconciliation(shop, stall, "?issued=3").get_json()["gaps"] == [[1, 3]]
    receipts = [stall.sale(PLAIN) for _ in range(6)]
    stall.results(receipts[2], receipts[3], receipts[5])
    answer = reconciliation(shop, stall).get_json()
    assert (answer["issued"], answer["gaps"], answer["held"]) == (6, [[1, 2], [5, 5]], 3)
    stall.results(receipts[0], receipts[1], receipts[4])
    answer = reconciliation(shop, stall).get_json()
    assert (answer["gaps"], answer["booked"], answer["flags"]) == ([], 6, [])


def test_only_the_pops_merchant_may_read_it(shop: Shop, plane: Plane) -> None:
    stall = shop.enroll("stall-1")
    outsider = plane.merchant("outsider")
    for token, pop_id in ((outsider.token, stall.pop_id), (shop.account.token, 999)):
        response = plane.call("GET", f"/v1/pops/{pop_id}/reconciliation", token)
        assert (response.status_code, error_of(response)["field"]) == (404, "pop_id")
    publish_only = plane.token(shop.account.merchant_id, "publish")
    assert reconciliation(shop, stall, token=publish_only).status_code == 403
    assert plane.call("GET", f"/v1/pops/{stall.pop_id}/reconciliation",
                      stall.token).status_code == 401  # not with the PoP's own secret


@pytest.mark.parametrize("query", ["?issued=-1", "?issued=x", "?issued=2147483648"])
def test_a_bad_issued_count_is_422(shop: Shop, query: str) -> None:
    stall = shop.enroll("stall-1")
    response = reconciliation(shop, stall, query)
    assert (response.status_code, error_of(response)["field"]) == (422, "issued")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Shop]]:
    """The app under Werkzeug's server on a free port (SQLite), for the CLI to call."""
    app = start_app(f"sqlite:///{tmp_path / 'poprules.db'}", tmp_path / "keys")
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", make_shop(Plane(app))
    finally:
        http.shutdown()
        thread.join()
        app.extensions["poprules"].db.dispose()


def run(url: str, shop: Shop, *args: str) -> Result:
    return CliRunner().invoke(main, ["reconcile", *args, "--url", url,
                                     "--token", shop.account.token])


def test_the_command_prints_the_table_by_name_or_id(served: tuple[str, Shop]) -> None:
    url, shop = served
    stall = shop.enroll("stall-1")
    mixed_day(stall)
    by_name = run(url, shop, "stall-1", "--issued", "7")
    assert by_name.exit_code == 0, by_name.output
    lines = by_name.output.splitlines()
    assert lines[:8] == [f"PoP {stall.pop_id} (stall-1)", "  issued   7", "  received 3",
                         "  booked   1", "  flagged  1", "  held     1", "  missing  4",
                         "  gaps     3, 5-7"]
    assert lines[8].split() == ["seq", "id", "status", "reason"]
    assert lines[9].split()[:3] == ["2", fmt.receipt_id(stall.pop_id, 2), "flagged"]
    assert "amounts differ from release 1" in lines[9]
    assert lines[10].split()[:3] == ["4", fmt.receipt_id(stall.pop_id, 4), "held"]
    by_id = run(url, shop, str(stall.pop_id))
    assert by_id.exit_code == 0 and "  gaps     3\n" in by_id.output


def test_the_command_names_what_it_cannot_find(served: tuple[str, Shop]) -> None:
    url, shop = served
    shop.enroll("stall-1")
    unknown = run(url, shop, "stall-9")
    assert unknown.exit_code == 1
    assert "no PoP of this merchant is named or numbered 'stall-9'" in unknown.output
    refused = CliRunner().invoke(main, ["reconcile", "stall-1", "--url", url, "--token",
                                        "prt_" + "A" * 43])
    assert refused.exit_code == 1 and "401" in refused.output


def test_a_clean_pop_shows_no_gaps(served: tuple[str, Shop]) -> None:
    url, shop = served
    stall = shop.enroll("stall-1")
    stall.results(*[stall.sale(PLAIN) for _ in range(2)])
    result = run(url, shop, "stall-1")
    assert result.exit_code == 0
    assert result.output.splitlines()[1:] == [
        "  issued   2", "  received 2", "  booked   2", "  flagged  0", "  held     0",
        "  missing  0", "  gaps     none"]

