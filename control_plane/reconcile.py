"""Reconciliation: per PoP, the receipts it issued against what the control plane received,
booked, flagged and held, with every missing seq named (docs/receipts.md).

A PoP numbers its receipts 1, 2, 3, ... (the chain's `seq`), so the control plane knows it
issued at least as many as the highest seq received; the PoP's own count (its status page)
may be higher, when its last receipts are still in its outbox or lost, and is taken when
given. A rejected receipt (forged, altered) is never stored, so its seq shows as a gap.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from control_plane.receipts import BOOKED, FLAGGED, HELD
from control_plane.storage.models import Pop, Receipt


def report(session: Session, pop: Pop, issued: int = 0) -> dict[str, Any]:
    """The reconciliation of `pop`; `issued` is the PoP's own count, if known (else 0)."""
    counts = {status: count for status, count in session.execute(
        select(Receipt.status, func.count()).where(Receipt.pop_id == pop.id)
        .group_by(Receipt.status))}
    highest = session.scalar(select(func.max(Receipt.seq)).where(Receipt.pop_id == pop.id)) or 0
    issued = max(issued, highest)
    flags = session.execute(
        select(Receipt.seq, Receipt.receipt_id, Receipt.status, Receipt.reason)
        .where(Receipt.pop_id == pop.id, Receipt.status != BOOKED).order_by(Receipt.seq))
    return {"pop": pop.id, "name": pop.name, "issued": issued,
            "received": sum(counts.values()), "booked": counts.get(BOOKED, 0),
            "flagged": counts.get(FLAGGED, 0), "held": counts.get(HELD, 0),
            "gaps": gaps(session, pop.id, highest, issued),
            "flags": [{"seq": seq, "id": rid, "status": status, "reason": reason}
                      for seq, rid, status, reason in flags]}


def gaps(session: Session, pop_id: int, highest: int, issued: int) -> list[list[int]]:
    """The missing seqs from 1 to `issued` as [from, to] ranges, found by the index on
    (pop, seq) rather than by reading every seq: a gap starts after a receipt without a
    successor and ends before one without a predecessor."""
    if highest == 0:
        return [[1, issued]] if issued else []
    other = aliased(Receipt)
    mine = Receipt.pop_id == pop_id

    def neighbour(step: int) -> Any:
        return ~exists().where(and_(other.pop_id == pop_id, other.seq == Receipt.seq + step))

    starts = list(session.scalars(select(Receipt.seq + 1).where(
        mine, Receipt.seq < highest, neighbour(1)).order_by(Receipt.seq)))
    ends = list(session.scalars(select(Receipt.seq - 1).where(
        mine, Receipt.seq > 1, neighbour(-1)).order_by(Receipt.seq)))
    if len(ends) > len(starts):  # the first receipt received is not seq 1
        starts.insert(0, 1)
    ranges = [[start, end] for start, end in zip(starts, ends, strict=True)]
    if issued > highest:
        ranges.append([highest + 1, issued])
    return ranges
