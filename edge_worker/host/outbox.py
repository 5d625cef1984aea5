"""The PoP's durable outbox: every receipt it signs, chained, kept until the control plane has
acknowledged it.

SQLite in WAL mode with `synchronous=FULL`: a committed receipt survives a power cut, and the
core answers the checkout only after `append` returned. The next sequence number and the
previous receipt's digest are read in the same IMMEDIATE transaction that stores the receipt,
so the chain has no gap and no fork even with many request threads (or a second process on
the same file). Uploaded receipts stay: a refund needs its original, and the chain's head must
survive the upload of everything before it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from poprules import receipt

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER PRIMARY KEY,
    receipt_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    signature TEXT NOT NULL,
    digest TEXT NOT NULL,
    uploaded INTEGER NOT NULL DEFAULT 0,
    refund_of TEXT NULL,
    lines TEXT NULL
);
CREATE INDEX IF NOT EXISTS receipts_pending ON receipts (uploaded, seq);
CREATE INDEX IF NOT EXISTS receipts_refund_of ON receipts (refund_of);
"""

Build = Callable[[int, str], tuple[bytes, bytes]]


class OutboxError(RuntimeError):
    """A receipt the outbox will not store: it would break the chain."""


@dataclass(frozen=True)
class Pending:
    receipt_id: str
    body: bytes
    signature: str  # hex


@dataclass(frozen=True)
class Head:
    seq: int  # 0 before the first receipt
    digest: str  # receipt.GENESIS before the first receipt


class Outbox:
    """Thread-safe: one connection, one re-entrant lock. Re-entrant so that `build` may call
    `find` and `refunded` inside `append`'s transaction: a refund checks what is refunded
    already and is stored in one step, and two refunds of one line cannot both pass."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=30)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, build: Build) -> tuple[bytes, bytes]:
        """Store the receipt `build(seq, prev)` makes, as the chain's next link; returns its
        (body, signature) once they are on disk."""
        with self._lock, self._transaction():
            head = self._head()
            seq, prev = head.seq + 1, head.digest
            body, signature = build(seq, prev)
            try:
                fields = receipt.decode(body)
            except receipt.ReceiptError as exc:
                raise OutboxError(f"not a receipt: {exc}") from None
            if fields["seq"] != seq or fields["prev"] != prev:
                raise OutboxError(f"the receipt names seq {fields['seq']} after "
                                  f"{fields['prev']}; the chain's next is {seq} after {prev}")
            refund_of, lines = None, None
            if fields["kind"] == "refund":
                refund_of, lines = str(fields["refund_of"]), json.dumps(fields["lines"])
            self._db.execute(
                "INSERT INTO receipts (seq, receipt_id, body, signature, digest, uploaded, "
                "refund_of, lines) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (seq, fields["id"], body, signature.hex(), receipt.digest(body), refund_of,
                 lines))
        return body, signature

    def head(self) -> Head:
        with self._lock:
            return self._head()

    def depth(self) -> int:
        """Receipts the control plane has not acknowledged yet."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM receipts WHERE uploaded = 0").fetchone()
        return int(row[0])

    def find(self, receipt_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM receipts WHERE receipt_id = ?",
                                   (receipt_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def refunded(self, receipt_id: str) -> set[int]:
        """The line indices of `receipt_id` that refund receipts have reversed already."""
        with self._lock:
            rows = self._db.execute("SELECT lines FROM receipts WHERE refund_of = ?",
                                    (receipt_id,)).fetchall()
        return {int(index) for (lines,) in rows for index in json.loads(lines)}

    def pending(self, limit: int = 100) -> list[Pending]:
        """The oldest unacknowledged receipts, in chain order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT receipt_id, body, signature FROM receipts WHERE uploaded = 0 "
                "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Pending(str(i), bytes(b), str(s)) for i, b, s in rows]

    def mark_uploaded(self, receipt_ids: Iterable[str]) -> int:
        ids = list(receipt_ids)
        with self._lock, self._transaction():
            marked = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marked += self._db.execute(
                    f"UPDATE receipts SET uploaded = 1 WHERE uploaded = 0 AND receipt_id IN "
                    f"({', '.join('?' * len(chunk))})", chunk).rowcount
        return marked

    def _head(self) -> Head:
        row = self._db.execute(
            "SELECT seq, digest FROM receipts ORDER BY seq DESC LIMIT 1").fetchone()
        return Head(0, receipt.GENESIS) if row is None else Head(int(row[0]), str(row[1]))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._db.in_transaction:  # re-entered from `build`: the outer transaction rules
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
