"""The audit trail: filters by time, actor and kind; JSON pages, JSON Lines and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from control_plane.storage.models import AuditEvent
from tests.control_plane.conftest import Account, Plane, error_of

T0 = datetime(2026, 7, 4, 10, 0, 0, 250000, tzinfo=UTC)


def _seed(plane: Plane) -> tuple[Account, Account]:
    """Five events of alpha's an hour apart from T0, alternating actors, and one of beta's."""
    alpha, beta = plane.merchant("alpha"), plane.merchant("beta")
    with plane.state.db.session() as session:
        for hour in range(5):
            session.add(AuditEvent(
                at=T0 + timedelta(hours=hour), kind="token.created" if hour % 2 else "probe",
                merchant_id=alpha.merchant_id,
                actor_token_id=alpha.token_id if hour % 2 else None, details={"hour": hour}))
        session.add(AuditEvent(at=T0, kind="probe", merchant_id=beta.merchant_id,
                               details={"hour": 0}))
        session.commit()
    return alpha, beta


def _events(plane: Plane, token: str, **query: str) -> list[dict[str, Any]]:
    response = plane.call("GET", "/v1/audit", token, query_string=query)
    assert response.status_code == 200, response.data
    events: list[dict[str, Any]] = response.get_json()["events"]
    return events


def _hours(events: list[dict[str, Any]]) -> list[int]:
    return [e["details"]["hour"] for e in events if "hour" in e["details"]]


def test_time_window_is_since_inclusive_until_exclusive(plane: Plane) -> None:
    alpha, _ = _seed(plane)
    since = (T0 + timedelta(hours=1)).isoformat()  # +00:00
    until = (T0 + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _hours(_events(plane, alpha.token, since=since, until=until)) == [1, 2]
    # another zone names the same instant
    local = (T0 + timedelta(hours=4)).astimezone(ZoneInfo("America/New_York")).isoformat()
    assert local.endswith("-04:00")
    assert _hours(_events(plane, alpha.token, since=local)) == [4]


def test_an_events_own_time_finds_it_again(plane: Plane) -> None:
    alpha, _ = _seed(plane)
    third = _events(plane, alpha.token, kind="probe")[1]
    assert third["at"] == "2026-07-04T12:00:00.250000Z"
    assert _events(plane, alpha.token, since=third["at"], kind="probe")[0] == third


def test_actor_and_kind_filters(plane: Plane) -> None:
    alpha, beta = _seed(plane)
    by_token = _events(plane, alpha.token, actor=f"token:{alpha.token_id}")
    assert _hours(by_token) == [1, 3]
    assert {e["actor"] for e in by_token} == {f"token:{alpha.token_id}"}
    assert _hours(_events(plane, alpha.token, actor="operator", kind="probe")) == [0, 2, 4]
    assert _hours(_events(plane, alpha.token, kind="token.created")) == [1, 3]
    assert _events(plane, alpha.token, actor=f"token:{beta.token_id}") == []
    kinds = {e["kind"] for e in _events(plane, alpha.token)}
    assert {"merchant.created", "token.created", "probe", "key.created"} <= kinds


@pytest.mark.parametrize(("query", "field"), [
    ("since=yesterday", "since"),
    ("until=2026-07-04T10:00:00", "until"),  # no zone
    ("actor=someone", "actor"),
    ("actor=token:x", "actor"),
    ("format=xml", "format"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("after=-1", "after"),
])
def test_bad_filters_are_422(plane: Plane, query: str, field: str) -> None:
    account = plane.merchant("alpha")
    response = plane.call("GET", f"/v1/audit?{query}", account.token)
    assert response.status_code == 422 and error_of(response)["field"] == field


def test_pages(plane: Plane) -> None:
    alpha, _ = _seed(plane)
    everything = _events(plane, alpha.token, limit="1000")
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        page = plane.call("GET", f"/v1/audit?limit=3&after={after}", alpha.token).get_json()
        seen += page["events"]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == everything and len(everything) > 6


def test_jsonl_export(plane: Plane) -> None:
    alpha, _ = _seed(plane)
    response = plane.call("GET", "/v1/audit?format=jsonl&kind=probe", alpha.token)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit.jsonl"'
    lines = response.get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == _events(plane, alpha.token, kind="probe")


def test_csv_export(plane: Plane) -> None:
    alpha, _ = _seed(plane)
    response = plane.call("GET", "/v1/audit?format=csv&until=2026-07-05T00:00:00Z",
                          alpha.token)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    expected = _events(plane, alpha.token, until="2026-07-05T00:00:00Z")
    assert [r["id"] for r in rows] == [str(e["id"]) for e in expected] and len(rows) == 5
    assert list(rows[0]) == ["id", "at", "kind", "merchant_id", "actor", "details"]
    first = rows[0]
    assert (first["at"], first["kind"], first["actor"], json.loads(first["details"])) == \
        ("2026-07-04T10:00:00.250000Z", "probe", "operator", {"hour": 0})


def test_empty_export_still_has_its_header(plane: Plane) -> None:
    account = plane.merchant("alpha")
    response = plane.call("GET", "/v1/audit?format=csv&kind=nothing", account.token)
    assert response.get_data(as_text=True) == \
        "id,at,kind,merchant_id,actor,details\r\n"
    jsonl = plane.call("GET", "/v1/audit?format=jsonl&kind=nothing", account.token)
    assert jsonl.status_code == 200 and jsonl.get_data() == b""


def test_long_exports_come_in_batches(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    from control_plane.api import audit

    monkeypatch.setattr(audit, "EXPORT_BATCH", 2)
    alpha, _ = _seed(plane)
    lines = plane.call("GET", "/v1/audit?format=jsonl", alpha.token).get_data(
        as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == _events(plane, alpha.token)
