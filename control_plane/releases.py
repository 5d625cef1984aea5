"""Which release a PoP runs.

A release is rolled out to a group of PoPs ("canary", ...) or to every PoP ("*"); a PoP runs
the highest-numbered release rolled out to its group or to all. Numbers only grow, so a canary
goes first, "*" follows, and a rollback (a new, higher release with earlier content) wins
everywhere it is rolled out.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from control_plane.storage.models import Release, Rollout

EVERY_POP = "*"


def live_release(session: Session, merchant_id: int, group: str = EVERY_POP) -> Release | None:
    """The release a PoP of `group` runs (`EVERY_POP`: what every PoP runs), or None."""
    groups = {group, EVERY_POP}
    return session.scalar(
        select(Release)
        .join(Rollout, Rollout.release_id == Release.id)
        .where(Release.merchant_id == merchant_id, Rollout.group.in_(groups))
        .order_by(Release.number.desc())
        .limit(1)
    )
