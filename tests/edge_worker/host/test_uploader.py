"""The uploader: batches of 100 in chain order with the PoP secret; only what the control
plane acknowledges leaves the queue; outages back off from 1 s to 60 s."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Response

from edge_worker.host.outbox import Outbox
from edge_worker.host.sync import ControlPlaneClient, Unreachable
from edge_worker.host.uploader import Uploader, UploadError
from tests.edge_worker.host.conftest import SECRET, FakePlane
from tests.edge_worker.host.test_outbox import SIGNATURE, sale


def outbox_with(tmp_path: Path, count: int) -> Outbox:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(count):
        outbox.append(sale)
    return outbox


def acknowledge_all(batch: dict[str, Any]) -> Response:
    ids = [json.loads(r["body"])["id"] for r in batch["receipts"]]
    statuses = ["booked", "flagged", "held", "duplicate"]
    return Response(json.dumps({"results": [
        {"id": i, "status": statuses[n % 4]} for n, i in enumerate(ids)]}),
        content_type="application/json")


def uploader_of(outbox: Outbox, plane: FakePlane, **options: Any) -> Uploader:
    return Uploader(outbox, ControlPlaneClient(plane.url, SECRET, timeout=2), **options)


def test_batches_in_chain_order_until_empty(tmp_path: Path, plane: FakePlane) -> None:
    outbox = outbox_with(tmp_path, 250)
    plane.receipts = acknowledge_all
    uploader = uploader_of(outbox, plane)
    assert [uploader.upload_once() for _ in range(4)] == [100, 100, 50, 0]
    assert outbox.depth() == 0
    posts = [r for r in plane.requests if r[1] == "/v1/receipts"]
    assert len(posts) == 3
    method, _, headers, data = posts[0]
    assert method == "POST" and headers["Authorization"] == f"Bearer {SECRET}"
    sent = json.loads(data)["receipts"]
    assert set(sent[0]) == {"body", "signature"} and sent[0]["signature"] == SIGNATURE.hex()
    assert [json.loads(r["body"])["seq"] for r in sent] == list(range(1, 101))
    assert sent[0]["body"].encode() == outbox.find("3-1")


def test_only_acknowledged_receipts_leave_the_queue(tmp_path: Path, plane: FakePlane) -> None:
    outbox = outbox_with(tmp_path, 3)
    plane.receipts = lambda batch: Response(json.dumps(
        {"results": [{"id": "3-2", "status": "duplicate"}, {"id": "7-1", "status": "booked"}]}))
    assert uploader_of(outbox, plane).upload_once() == 1
    assert [p.receipt_id for p in outbox.pending()] == ["3-1", "3-3"]


@pytest.mark.parametrize(("status", "error"), [(503, Unreachable), (500, Unreachable),
                                               (401, UploadError), (422, UploadError)])
def test_a_refused_batch_stays(tmp_path: Path, plane: FakePlane, status: int,
                               error: type[Exception]) -> None:
    outbox = outbox_with(tmp_path, 2)
    plane.status = status
    with pytest.raises(error):
        uploader_of(outbox, plane).upload_once()
    assert outbox.depth() == 2


def test_an_answer_that_lists_nothing_is_an_error(tmp_path: Path, plane: FakePlane) -> None:
    outbox = outbox_with(tmp_path, 1)
    plane.receipts = lambda batch: Response("not json")
    with pytest.raises(UploadError, match="not JSON"):
        uploader_of(outbox, plane).upload_once()
    plane.receipts = lambda batch: Response("{}")
    with pytest.raises(UploadError, match="no results"):
        uploader_of(outbox, plane).upload_once()
    assert outbox.depth() == 1


def test_backoff_grows_from_one_to_sixty_seconds_with_jitter(tmp_path: Path,
                                                            plane: FakePlane) -> None:
    low = uploader_of(outbox_with(tmp_path, 0), plane, jitter=lambda: 0.0)
    high = uploader_of(low._outbox, plane, jitter=lambda: 1.0)
    assert [high.backoff(n) for n in (1, 2, 3, 4, 7, 8, 100)] == [1, 2, 4, 8, 60, 60, 60]
    assert [low.backoff(n) for n in (1, 2, 3, 7, 100)] == [1, 1, 2, 30, 30]


def test_the_thread_drains_after_an_outage(tmp_path: Path, plane: FakePlane) -> None:
    outbox = outbox_with(tmp_path, 120)
    plane.status = 503
    uploader = uploader_of(outbox, plane, idle=0.05, min_backoff=0.05, max_backoff=0.1)
    uploader.start()
    try:
        deadline = time.monotonic() + 10
        while uploader.status()["problem"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert "503" in uploader.status()["problem"]
        plane.receipts, plane.status = acknowledge_all, None
        while outbox.depth():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        outbox.append(sale)
        while outbox.depth():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        uploader.stop()
    assert uploader.status() == {"depth": 0, "problem": None,
                                 "last_upload": uploader.status()["last_upload"]}
