"""The merchant's live program, as several pages need it: to prefill a draft, to compare one
with it, and to write amounts in its currency."""

from __future__ import annotations

from sqlalchemy.orm import Session

from control_plane.releases import EVERY_POP, live_release
from control_plane.storage.models import ProgramVersion, Release
from control_plane.versions import program_of
from poprules.errors import InputError


def live(session: Session, merchant_id: int,
         group: str = EVERY_POP) -> tuple[Release, ProgramVersion] | None:
    """The release PoPs of `group` run and the draft it was made of, or None."""
    release = live_release(session, merchant_id, group)
    if release is None:
        return None
    version = session.get(ProgramVersion, release.version_id)
    assert version is not None  # a release's version is never deleted
    return release, version


def currency(session: Session, merchant_id: int) -> tuple[str, int] | None:
    """(code, decimals) of the live program, or None when nothing is live (amounts are then
    written in minor units). The checked program is cached, so this is cheap after the
    first page that needs it."""
    found = live(session, merchant_id)
    if found is None:
        return None
    try:
        program = program_of(found[1])
    except InputError:  # a program a later language version no longer reads
        return None
    return program.currency, program.places
