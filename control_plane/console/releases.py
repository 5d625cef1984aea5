"""The releases page, one release, and rolling back to one (publishing.rollback: a new,
higher release with the earlier one's content and its own signature)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import flash, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from control_plane.console.signin import signed_in, visitor
from control_plane.console.web import console, page
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.publishing import checked_group, rollback
from control_plane.releases import EVERY_POP, live_release
from control_plane.storage.models import ApiToken, ProgramVersion, Release, Rollout


@dataclass
class Shown:
    """A release as the page lists it."""

    number: int
    version: int
    program: str
    release_hash: str
    created_at: datetime
    created_by: str
    rollback_of: int | None
    key_id: str
    signature: str
    groups: list[str] = field(default_factory=list)
    live_on: list[str] = field(default_factory=list)  # "every PoP", or group names

    @property
    def is_live(self) -> bool:
        return "every PoP" in self.live_on


def actor_names(db: Session, merchant_id: int) -> dict[int, str]:
    """Token id -> how a page names it: its name and id (names need not be unique)."""
    rows = db.execute(select(ApiToken.id, ApiToken.name)
                      .where(ApiToken.merchant_id == merchant_id))
    return {token_id: f"{name} (token {token_id})" for token_id, name in rows}


def actor_name(names: dict[int, str], token_id: int | None) -> str:
    return "operator" if token_id is None else names.get(token_id, f"token {token_id}")


def shown_releases(db: Session, merchant_id: int, number: int | None = None) -> list[Shown]:
    """Newest first (or the one numbered `number`), with where each is rolled out and
    where it is what PoPs run: a group runs the highest release rolled out to it or to
    every PoP, so a group is named only where it runs something else than every PoP."""
    query = (select(Release, ProgramVersion.number, ProgramVersion.program_name)
             .join(ProgramVersion, ProgramVersion.id == Release.version_id)
             .where(Release.merchant_id == merchant_id).order_by(Release.number.desc()))
    if number is not None:
        query = query.where(Release.number == number)
    names = actor_names(db, merchant_id)
    shown = {release.id: Shown(release.number, version, program, release.release_hash,
                               release.created_at, actor_name(names, release.created_by_token_id),
                               release.rollback_of, release.key_id, release.signature)
             for release, version, program in db.execute(query)}
    rollouts = db.execute(select(Rollout.group, Release.id, Release.number)
                          .join(Release, Release.id == Rollout.release_id)
                          .where(Rollout.merchant_id == merchant_id)).all()
    highest: dict[str, int] = {}
    for group, release_id, release_number in rollouts:
        highest[group] = max(highest.get(group, 0), release_number)
        if release_id in shown and group not in shown[release_id].groups:
            shown[release_id].groups.append(group)
    everywhere = highest.get(EVERY_POP, 0)
    live_numbers = {"every PoP": everywhere} | {
        group: top for group, top in highest.items() if group != EVERY_POP and top > everywhere}
    for release in shown.values():
        release.groups.sort()
        release.live_on = [where for where, top in live_numbers.items()
                           if top == release.number]
    return list(shown.values())


def may_roll_back_to(release: Shown, live: Release | None) -> bool:
    """Offer a rollback to an older release whose content every PoP does not run already
    (a newer one, such as a canary, is rolled out, not rolled back to)."""
    return live is not None and release.number < live.number \
        and release.release_hash != live.release_hash


@console.get("/releases")
@signed_in("read")
def releases() -> Response:
    who = visitor()
    rows = shown_releases(session(), who.merchant_id)
    live = live_release(session(), who.merchant_id)
    return page("console/releases.html", releases=rows,
                rollback_to={r.number for r in rows if may_roll_back_to(r, live)},
                can_publish=who.may("publish"))


def _one(number: int) -> Shown:
    found = shown_releases(session(), visitor().merchant_id, number)
    if not found:
        raise ApiError(404, "number", f"There is no release {number}.")
    return found[0]


@console.get("/releases/<int:number>")
@signed_in("read")
def release(number: int) -> Response:
    shown = _one(number)
    live = live_release(session(), visitor().merchant_id)
    return page("console/release.html", release=shown,
                may_roll_back=may_roll_back_to(shown, live),
                can_publish=visitor().may("publish"))


@console.route("/releases/<int:number>/rollback", methods=["GET", "POST"])
@signed_in("publish")
def roll_back(number: int) -> Response:
    """GET asks for confirmation; POST makes the new release."""
    shown = _one(number)
    group_text = request.form.get("group", EVERY_POP).strip() or EVERY_POP
    if request.method == "GET":
        return page("console/rollback.html", release=shown, group=group_text)
    who = visitor()
    db = session()
    try:
        group = checked_group(group_text)
        live = live_release(db, who.merchant_id, group)
        if live is not None and live.release_hash == shown.release_hash:
            raise invalid("to", f"Release {number}'s content is what "
                          f"{'every PoP' if group == EVERY_POP else group} runs already "
                          f"(release {live.number}).")
        earlier = db.scalar(select(Release).where(Release.merchant_id == who.merchant_id,
                                                  Release.number == number))
        assert earlier is not None  # `_one` found it
        made = rollback(db, earlier, group=group, actor_token_id=who.token_id)
    except ApiError as exc:
        db.rollback()
        return page("console/rollback.html", exc.status, release=shown, group=group_text,
                    error=exc.message)
    flash(f"Release {made.number} published: the content of release {number} again.",
          "success")
    return redirect(url_for("console.release", number=made.number), 303)
