"""The outbox: a gapless chain from many threads, nothing stored when building fails, the
chain's head survives a restart, refunds are found by their original."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from edge_worker.host.outbox import Outbox, OutboxError
from poprules import receipt

POP, MERCHANT = 3, 1
SIGNATURE = bytes(range(64))


def body_of(seq: int, prev: str, **extra: Any) -> bytes:
    fields = {"format": receipt.FORMAT, "kind": "sale", "id": receipt.receipt_id(POP, seq),
              "merchant": MERCHANT, "pop": POP, "seq": seq, "prev": prev, "at": 1_700_000_000,
              **extra}
    return receipt.encode(fields)


def sale(seq: int, prev: str) -> tuple[bytes, bytes]:
    return body_of(seq, prev), SIGNATURE


def refund(of: str, lines: list[int]) -> Any:
    def build(seq: int, prev: str) -> tuple[bytes, bytes]:
        return body_of(seq, prev, kind="refund", refund_of=of, lines=lines), SIGNATURE
    return build


def chain_of(outbox: Outbox) -> list[dict[str, Any]]:
    return [receipt.decode(p.body) for p in outbox.pending(10_000)]


def test_receipts_chain_from_genesis(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    first, signature = outbox.append(sale)
    second, _ = outbox.append(sale)
    assert signature == SIGNATURE
    assert receipt.decode(first)["prev"] == receipt.GENESIS
    assert receipt.decode(second)["prev"] == receipt.digest(first)
    assert [p.receipt_id for p in outbox.pending()] == ["3-1", "3-2"]
    assert outbox.pending()[0].signature == SIGNATURE.hex()
    assert outbox.find("3-2") == second and outbox.find("3-9") is None


def test_many_threads_make_one_chain_without_gaps(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")

    def work() -> None:
        for _ in range(25):
            outbox.append(sale)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chain = chain_of(outbox)
    assert [r["seq"] for r in chain] == list(range(1, 201))
    bodies = [p.body for p in outbox.pending(10_000)]
    assert all(receipt.decode(b)["prev"] == receipt.digest(a) for a, b in itertools.pairwise(bodies))


def test_a_failing_build_stores_nothing_and_frees_its_seq(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(sale)

    def broken(seq: int, prev: str) -> tuple[bytes, bytes]:
        raise RuntimeError("the signer failed")

    with pytest.raises(RuntimeError):
        outbox.append(broken)
    with pytest.raises(OutboxError, match="chain's next is 2"):
        outbox.append(lambda seq, prev: sale(seq + 1, prev))
    with pytest.raises(OutboxError, match="not a receipt"):
        outbox.append(lambda seq, prev: (b"{}", SIGNATURE))
    assert outbox.depth() == 1
    assert receipt.decode(outbox.append(sale)[0])["seq"] == 2


def test_a_restart_continues_the_chain(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(3):
        last, _ = outbox.append(sale)
    outbox.close()
    again = Outbox(tmp_path / "outbox.db")
    assert again.head().seq == 3 and again.head().digest == receipt.digest(last)
    fields = receipt.decode(again.append(sale)[0])
    assert fields["seq"] == 4 and fields["prev"] == receipt.digest(last)


def test_durability_settings(tmp_path: Path) -> None:
    Outbox(tmp_path / "outbox.db").append(sale)
    db = sqlite3.connect(tmp_path / "outbox.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM receipts").fetchone()[0] == 1


def test_upload_marks_and_depth(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for _ in range(5):
        outbox.append(sale)
    assert outbox.depth() == 5
    assert [p.receipt_id for p in outbox.pending(2)] == ["3-1", "3-2"]
    assert outbox.mark_uploaded(["3-1", "3-3", "3-1", "nope"]) == 2
    assert outbox.depth() == 3
    assert [p.receipt_id for p in outbox.pending()] == ["3-2", "3-4", "3-5"]
    assert outbox.find("3-1") is not None  # kept: a refund needs its original


def test_refunded_lines_add_up(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(sale)
    outbox.append(sale)
    assert outbox.refunded("3-1") == set()
    outbox.append(refund("3-1", [0, 2]))
    outbox.append(refund("3-1", [3]))
    outbox.append(refund("3-2", [1]))
    assert outbox.refunded("3-1") == {0, 2, 3}
    assert outbox.refunded("3-2") == {1}


def test_build_may_check_refunds_inside_the_transaction(tmp_path: Path) -> None:
    """Two refunds of one line racing: the check inside `build` sees the first."""
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.append(sale)
    stored: list[bool] = []

    def guarded(seq: int, prev: str) -> tuple[bytes, bytes]:
        if 1 in outbox.refunded("3-1"):
            raise ValueError("line 1 is refunded already")
        assert outbox.find("3-1") is not None
        return refund("3-1", [1])(seq, prev)  # type: ignore[no-any-return]

    def work() -> None:
        try:
            outbox.append(guarded)
            stored.append(True)
        except ValueError:
            stored.append(False)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stored) == [False] * 5 + [True]
    assert outbox.refunded("3-1") == {1}
