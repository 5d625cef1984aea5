"""The uploader: a background thread handing the outbox's receipts to the control plane.

Batches of up to 100, oldest first, to `POST /v1/receipts` as
`{"receipts": [{"body": text, "signature": hex}]}` with the PoP secret. A 2xx answer lists a
result per receipt (`{"id", "status": booked|flagged|held|duplicate}`); every receipt listed
is marked uploaded whatever its status, because acknowledged means the control plane holds it
(a flagged one is for people to review there, and resending changes nothing: the control
plane dedupes by id). Receipts the answer does not list stay pending and go again.

A receipt is marked only after the answer arrived, so a PoP killed mid-upload sends it again
on restart, and the control plane answers `duplicate`: nothing is lost, nothing is booked
twice. Failures back off exponentially with jitter, from 1 s to 60 s, so a control plane
coming back is not hit by every PoP at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from edge_worker.host.background import Background
from edge_worker.host.outbox import Outbox
from edge_worker.host.sync import ControlPlaneClient, Unreachable

BATCH = 100
MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
IDLE = 1.0  # how often an empty outbox is looked at again
log = logging.getLogger("poprules.pop")


class UploadError(RuntimeError):
    """The batch was not acknowledged; it stays in the outbox."""


class Uploader:
    def __init__(self, outbox: Outbox, client: ControlPlaneClient, *, batch: int = BATCH,
                 idle: float = IDLE, min_backoff: float = MIN_BACKOFF,
                 max_backoff: float = MAX_BACKOFF,
                 jitter: Callable[[], float] = random.random) -> None:
        self._outbox = outbox
        self._client = client
        self._batch = batch
        self._idle = idle
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._jitter = jitter
        self._failures = 0
        self._problem: str | None = None
        self._last_upload: float | None = None
        self._loop = Background("poprules-uploader", self._step)

    def status(self) -> dict[str, Any]:
        return {"depth": self._outbox.depth(), "problem": self._problem,
                "last_upload": None if self._last_upload is None else int(self._last_upload)}

    def upload_once(self) -> int:
        """Send one batch; the number of receipts acknowledged. Raises `UploadError` or
        `Unreachable` when the control plane did not take it."""
        batch = self._outbox.pending(self._batch)
        if not batch:
            return 0
        answer = self._client.request("POST", "/v1/receipts", json_body={"receipts": [
            {"body": p.body.decode("utf-8"), "signature": p.signature} for p in batch]})
        if answer.status >= 500:
            raise Unreachable(f"POST /v1/receipts: {answer.status}")
        if not 200 <= answer.status < 300:
            raise UploadError(f"POST /v1/receipts: {answer.status} {answer.body[:300]!r}")
        sent = {p.receipt_id for p in batch}
        acknowledged = sent & _acknowledged(answer.body)
        self._outbox.mark_uploaded(acknowledged)
        self._last_upload = time.time()
        if len(acknowledged) < len(sent):
            log.warning("the control plane acknowledged %d of %d receipts; the rest go again",
                        len(acknowledged), len(sent))
        return len(acknowledged)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._loop.stop(timeout)

    def _step(self) -> float:
        """One batch; how long to wait before the next."""
        try:
            count = self.upload_once()
        except (Unreachable, UploadError) as exc:
            return self._failed(str(exc))
        except Exception as exc:  # the thread must outlive any bug
            log.exception("receipt upload failed")
            return self._failed(f"{type(exc).__name__}: {exc}")
        self._failures, self._problem = 0, None
        return 0.0 if count else self._idle

    def _failed(self, reason: str) -> float:
        self._failures += 1
        self._problem = reason
        delay = self.backoff(self._failures)
        log.warning("receipt upload: %s; next try in %.1f s", reason, delay)
        return delay

    def backoff(self, failures: int) -> float:
        """Exponential, capped, with "equal jitter": half fixed, half random."""
        ceiling = min(self._max_backoff, self._min_backoff * 2.0 ** min(failures - 1, 30))
        return max(self._min_backoff, ceiling / 2 + ceiling / 2 * self._jitter())

def _acknowledged(body: bytes) -> set[str]:
    """The ids the control plane's answer lists, whatever their status."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise UploadError(f"the answer is not JSON: {body[:200]!r}") from None
    results = answer.get("results", answer.get("receipts")) if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise UploadError(f"the answer lists no results: {body[:200]!r}")
    return {str(r["id"]) for r in results if isinstance(r, dict) and "id" in r}
