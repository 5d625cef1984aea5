"""Drafts: upload a program and catalog, see them checked, simulate them, and compare them with
what PoPs run now — all before publishing (`api/releases.py`).
---
schemas:
  Version:
    type: object
    required: [number, program, samples, created_at]
    properties:
      number: {type: integer}
      program: {type: string, description: the program's name}
      samples: {type: integer, description: how many sample requests it keeps}
      created_at: {type: string, format: date-time}
      rules: {type: integer}
      items: {type: integer}
  Quotes:
    type: object
    required: [version, quotes]
    properties:
      version: {type: integer}
      quotes:
        type: array
        items: {type: object, description: "a quote (spec section 8), or {error} for a request that does not check"}
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for
from sqlalchemy import select

from control_plane.auth import caller, require
from control_plane.context import session
from control_plane.errors import ApiError, invalid, invalid_input
from control_plane.publishing import checked_group
from control_plane.releases import live_release
from control_plane.storage.models import ProgramVersion
from control_plane.versions import (
    CATALOG_FORMATS,
    MAX_REQUESTS,
    PROGRAM_FORMATS,
    Busy,
    answer,
    check,
    diff,
    program_of,
    read_requests,
    store_version,
    version_json,
)
from control_plane.wire import json_body
from poprules.errors import InputError

bp = Blueprint("versions", __name__, url_prefix="/v1/merchants/<int:merchant_id>/versions")



def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, f"required: the {field}'s text")
    return value


def _choice(body: dict[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = body.get(field, choices[0])
    if value not in choices:
        raise invalid(field, f"one of: {', '.join(choices)}")
    return str(value)


def _requests(body: dict[str, Any], field: str, default: list[Any]) -> list[Any]:
    value = body.get(field, default)
    if not isinstance(value, list):
        raise invalid(field, "a list of requests (spec section 8)")
    if len(value) > MAX_REQUESTS:
        raise invalid(field, f"at most {MAX_REQUESTS} requests, found {len(value)}")
    return value


def _version(merchant_id: int, number: int) -> ProgramVersion:
    version = session().scalar(select(ProgramVersion).where(
        ProgramVersion.merchant_id == merchant_id, ProgramVersion.number == number))
    if version is None:
        raise ApiError(404, "number", f"no version {number}")
    return version


@bp.post("")
@require("publish")
def post_version(merchant_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Check and keep a draft. A program, catalog or sample that does not check is 422 with
    the first problem and where it is, and nothing is kept.
    ---
    post:
      summary: Upload a program and its catalog as a new draft version
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [program, catalog]
              additionalProperties: false
              properties:
                program: {type: string, minLength: 1}
                program_format: {type: string, enum: [yaml, json], default: yaml}
                catalog: {type: string, minLength: 1}
                catalog_format: {type: string, enum: [json, csv], default: json}
                samples: {type: array, maxItems: 200, items: {type: object},
                          description: "requests (spec section 8) a release is checked on"}
      responses:
        201:
          description: The draft, checked
          headers:
            Location: {schema: {type: string}}
          content: {application/json: {schema: Version}}
        422:
          description: The program, catalog or a sample does not check; the error says where
          content: {application/json: {schema: Error}}
        503:
          description: Too many uploads at once; try again
          headers:
            Retry-After: {schema: {type: string}}
          content: {application/json: {schema: Error}}
    """
    body = json_body(frozenset({"program", "program_format", "catalog", "catalog_format",
                                "samples"}))
    program_text, catalog_text = _text(body, "program"), _text(body, "catalog")
    program_format = _choice(body, "program_format", PROGRAM_FORMATS)
    catalog_format = _choice(body, "catalog_format", CATALOG_FORMATS)
    samples = _requests(body, "samples", [])
    try:
        program = check(program_text, program_format, catalog_text, catalog_format)
        read_requests(program, samples, "samples")
    except InputError as exc:
        raise invalid_input(exc, "samples") from None
    try:
        version = store_version(session(), merchant_id, program, program_text=program_text,
                                program_format=program_format, catalog_text=catalog_text,
                                catalog_format=catalog_format, samples=samples,
                                token_id=caller().token_id)
    except Busy:
        raise ApiError(503, None, "too many uploads at once; try again",
                       {"Retry-After": "1"}) from None
    location = url_for(".get_version", merchant_id=merchant_id, number=version.number)
    return version_json(version, program), 201, {"Location": location}


@bp.get("")
@require("read")
def list_versions(merchant_id: int) -> dict[str, Any]:
    """The merchant's drafts, newest first (without their texts).
    ---
    get:
      summary: The merchant's draft versions, newest first
      responses:
        200:
          description: Every version, without its texts
          content:
            application/json:
              schema:
                type: object
                required: [versions]
                properties:
                  versions: {type: array, items: Version}
    """
    rows = session().scalars(select(ProgramVersion)
                             .where(ProgramVersion.merchant_id == merchant_id)
                             .order_by(ProgramVersion.number.desc()))
    return {"versions": [version_json(v) for v in rows]}


@bp.get("/<int:number>")
@require("read")
def get_version(merchant_id: int, number: int) -> dict[str, Any]:
    """One draft with the texts it was made of, as uploaded.
    ---
    get:
      summary: One draft version, with the texts it was made of
      responses:
        200:
          description: The version and its sources
          content:
            application/json:
              schema:
                allOf:
                  - Version
                  - type: object
                    required: [sources]
                    properties:
                      sources:
                        type: object
                        required: [program, program_format, catalog, catalog_format, samples]
                        properties:
                          program: {type: string}
                          program_format: {type: string, enum: [yaml, json]}
                          catalog: {type: string}
                          catalog_format: {type: string, enum: [json, csv]}
                          samples: {type: array, items: {type: object}}
    """
    version = _version(merchant_id, number)
    return {**version_json(version, program_of(version)),
            "sources": {"program": version.program, "program_format": version.program_format,
                        "catalog": version.catalog, "catalog_format": version.catalog_format,
                        "samples": version.samples}}


@bp.post("/<int:number>/simulate")
@require("read")
def simulate(merchant_id: int, number: int) -> dict[str, Any]:
    """Quotes of the draft for `requests` (default: its samples), exactly as a PoP would
    give them; a request that does not check gets its error in its place.
    ---
    post:
      summary: Quote requests with a draft, as a PoP would
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                requests: {type: array, maxItems: 200, items: {type: object},
                           description: "requests (spec section 8); default: the draft's samples"}
      responses:
        200: {description: One answer per request, content: {application/json: {schema: Quotes}}}
    """
    version = _version(merchant_id, number)
    body = json_body(frozenset({"requests"}))
    requests = _requests(body, "requests", version.samples)
    program = program_of(version)
    return {"version": number, "quotes": [answer(program, data) for data in requests]}


@bp.post("/<int:number>/diff")
@require("read")
def diff_against_live(merchant_id: int, number: int) -> dict[str, Any]:
    """What publishing the draft would change for `requests` (default: its samples), per
    request and per rule, against the release PoPs of `group` run now (default: every PoP).
    ---
    post:
      summary: What publishing a draft would change, per request and per rule
      requestBody:
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                requests: {type: array, maxItems: 200, items: {type: object},
                           description: "requests (spec section 8); default: the draft's samples"}
                group: {type: string, pattern: '^(\\*|[a-z0-9_-]{1,64})$', default: "*",
                        description: 'a group of PoPs, or "*" for every PoP'}
      responses:
        200:
          description: The changes against the live release (every figure is new when none is)
          content:
            application/json:
              schema:
                type: object
                required: [version, against, group, changed, requests]
                properties:
                  version: {type: integer}
                  against:
                    type: [object, "null"]
                    required: [release, version, hash]
                    properties:
                      release: {type: integer}
                      version: {type: integer}
                      hash: {type: string}
                  group: {type: string}
                  changed: {type: integer, description: how many requests change}
                  requests:
                    type: array
                    items:
                      type: object
                      required: [index, changed]
                      properties:
                        index: {type: integer}
                        changed: {type: boolean}
                        error: {type: object, description: the request's error; no figures then}
                        totals:
                          type: object
                          description: "per changed total: {live, draft, change} in minor units"
                          additionalProperties:
                            type: object
                            required: [live, draft, change]
                            properties:
                              live: {type: [integer, "null"]}
                              draft: {type: integer}
                              change: {type: integer}
                        rules:
                          type: array
                          items:
                            type: object
                            required: [rule, live, draft, change]
                            properties:
                              rule: {type: string}
                              live: {type: [object, "null"], description: the live rule report}
                              draft: {type: [object, "null"], description: the draft's}
                              change: {type: integer}
    """
    version = _version(merchant_id, number)
    body = json_body(frozenset({"requests", "group"}))
    requests = _requests(body, "requests", version.samples)
    group = checked_group(body.get("group"))
    program = program_of(version)
    draft = [answer(program, data) for data in requests]
    live = live_release(session(), merchant_id, group)
    if live is None:
        before: list[dict[str, Any] | None] = [None] * len(requests)
        against = None
    else:
        live_version = session().get(ProgramVersion, live.version_id)
        assert live_version is not None
        live_program = program_of(live_version)
        before = [answer(live_program, data) for data in requests]
        against = {"release": live.number, "version": live_version.number,
                   "hash": live.release_hash}
    changes = diff(before, draft)
    return {"version": number, "against": against, "group": group,
            "changed": sum(1 for change in changes if change["changed"]),
            "requests": changes}
