"""Releases: publish a draft, roll a release out to more PoPs, roll back, and read them.
---
schemas:
  Release:
    type: object
    required: [number, version, program, hash, key_id, signature, rollback_of, groups,
               created_at, created_by]
    properties:
      number: {type: integer}
      version: {type: integer}
      program: {type: string}
      hash: {type: string, pattern: "^sha256:[0-9a-f]{64}$"}
      key_id: {type: string}
      signature: {type: string}
      rollback_of: {type: [integer, "null"], description: the release whose content it carries}
      groups: {type: array, items: {type: string}, description: 'where it is rolled out; "*": every PoP'}
      created_at: {type: string, format: date-time}
      created_by: {type: [string, "null"], description: "token:<id>"}
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, url_for
from sqlalchemy import select

from control_plane.auth import caller, require
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.publishing import checked_group, publish, release_json, roll_out, rollback
from control_plane.releases import EVERY_POP, live_release
from control_plane.storage.models import ProgramVersion, Release
from control_plane.wire import MAX_ID, json_body

bp = Blueprint("releases", __name__, url_prefix="/v1/merchants/<int:merchant_id>")

BUNDLE_TYPE = "application/vnd.poprules.bundle+msgpack"


def _number(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise invalid(field, "required: a number from 1")
    return value


def _release(merchant_id: int, number: int, field: str = "number") -> Release:
    release = session().scalar(select(Release).where(Release.merchant_id == merchant_id,
                                                     Release.number == number))
    if release is None:
        raise ApiError(404, field, f"no release {number}")
    return release


def _created(merchant_id: int, release: Release) -> tuple[dict[str, Any], int, dict[str, str]]:
    location = url_for(".get_release", merchant_id=merchant_id, number=release.number)
    return release_json(session(), release), 201, {"Location": location}


@bp.post("/releases")
@require("publish")
def post_release(merchant_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Publish a draft: compile it, check the module against the reference interpreter on
    the draft's samples, sign it with the next release number, and roll it out to `group`
    (default: every PoP). 409 when the check fails; nothing is written then.
    ---
    post:
      summary: Publish a draft version as a signed release
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [version]
              additionalProperties: false
              properties:
                version: {type: integer, minimum: 1, maximum: 2147483647}
                group: {type: string, pattern: '^(\\*|[a-z0-9_-]{1,64})$', default: "*",
                        description: 'a group of PoPs, or "*" for every PoP'}
      responses:
        201:
          description: The release
          headers:
            Location: {schema: {type: string}}
          content: {application/json: {schema: Release}}
        409:
          description: The compiled module disagrees with the reference on a sample
          content: {application/json: {schema: Error}}
        503:
          description: Too many publishes at once; try again
          headers:
            Retry-After: {schema: {type: string}}
          content: {application/json: {schema: Error}}
    """
    body = json_body(frozenset({"version", "group"}))
    number = _number(body, "version")
    group = checked_group(body.get("group"))
    version = session().scalar(select(ProgramVersion).where(
        ProgramVersion.merchant_id == merchant_id, ProgramVersion.number == number))
    if version is None:
        raise ApiError(404, "version", f"no version {number}")
    release = publish(session(), version, group=group, actor_token_id=caller().token_id)
    return _created(merchant_id, release)


@bp.post("/rollback")
@require("publish")
def post_rollback(merchant_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Run an earlier release's content again, as a new release (a higher number and its own
    signature), rolled out to `group` (default: every PoP).
    ---
    post:
      summary: Run an earlier release's content again, as a new release
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [to]
              additionalProperties: false
              properties:
                to: {type: integer, minimum: 1, maximum: 2147483647}
                group: {type: string, pattern: '^(\\*|[a-z0-9_-]{1,64})$', default: "*",
                        description: 'a group of PoPs, or "*" for every PoP'}
      responses:
        201:
          description: The new release
          headers:
            Location: {schema: {type: string}}
          content: {application/json: {schema: Release}}
        503:
          description: Too many publishes at once; try again
          headers:
            Retry-After: {schema: {type: string}}
          content: {application/json: {schema: Error}}
    """
    body = json_body(frozenset({"to", "group"}))
    earlier = _release(merchant_id, _number(body, "to"), "to")
    group = checked_group(body.get("group"))
    live = live_release(session(), merchant_id, group)
    if live is not None and live.release_hash == earlier.release_hash:
        raise invalid("to", f"release {earlier.number}'s content is what {group!r} runs "
                      f"already (release {live.number})")
    release = rollback(session(), earlier, group=group, actor_token_id=caller().token_id)
    return _created(merchant_id, release)


@bp.get("/releases")
@require("read")
def list_releases(merchant_id: int) -> dict[str, Any]:
    """Every release, newest first, and the number every PoP runs now (`live`).
    ---
    get:
      summary: The merchant's releases, newest first
      responses:
        200:
          description: Every release, and the one every PoP runs
          content:
            application/json:
              schema:
                type: object
                required: [live, releases]
                properties:
                  live: {type: [integer, "null"]}
                  releases: {type: array, items: Release}
    """
    rows = session().scalars(select(Release).where(Release.merchant_id == merchant_id)
                             .order_by(Release.number.desc()))
    live = live_release(session(), merchant_id, EVERY_POP)
    return {"live": None if live is None else live.number,
            "releases": [release_json(session(), r) for r in rows]}


@bp.get("/releases/<int:number>")
@require("read")
def get_release(merchant_id: int, number: int) -> dict[str, Any]:
    """
    ---
    get:
      summary: One release
      responses:
        200: {description: The release, content: {application/json: {schema: Release}}}
    """
    return release_json(session(), _release(merchant_id, number))


@bp.get("/releases/<int:number>/bundle")
@require("read")
def get_bundle(merchant_id: int, number: int) -> Response:
    """The signed bundle's bytes, with its signature in headers (as PoPs receive it).
    ---
    get:
      summary: A release's signed bundle
      responses:
        200:
          description: The bundle's bytes
          headers:
            ETag: {schema: {type: string}}
            X-Poprules-Release: {schema: {type: string}}
            X-Poprules-Release-Hash: {schema: {type: string}}
            X-Poprules-Key-Id: {schema: {type: string}}
            X-Poprules-Signature: {schema: {type: string}}
          content:
            application/vnd.poprules.bundle+msgpack:
              schema: {type: string, format: binary}
    """
    release = _release(merchant_id, number)
    return Response(release.bundle, content_type=BUNDLE_TYPE, headers={
        "ETag": f'"{release.release_hash}"', "X-Poprules-Release": str(release.number),
        "X-Poprules-Release-Hash": release.release_hash,
        "X-Poprules-Key-Id": release.key_id, "X-Poprules-Signature": release.signature})


@bp.post("/releases/<int:number>/rollout")
@require("publish")
def post_rollout(merchant_id: int, number: int) -> dict[str, Any]:
    """Roll a release out to one more group, or to every PoP ("*") after a canary.
    ---
    post:
      summary: Roll a release out to one more group, or to every PoP
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                group: {type: string, pattern: '^(\\*|[a-z0-9_-]{1,64})$', default: "*",
                        description: 'a group of PoPs, or "*" for every PoP'}
      responses:
        200: {description: The release, content: {application/json: {schema: Release}}}
    """
    release = _release(merchant_id, number)
    group = checked_group(json_body(frozenset({"group"})).get("group"))
    live = live_release(session(), merchant_id, group)
    if live is not None and live.number > release.number:
        raise invalid("group", f"{group!r} runs release {live.number} already, newer than "
                      f"{release.number}: roll back instead")
    roll_out(session(), release, group=group, actor_token_id=caller().token_id)
    return release_json(session(), release)
