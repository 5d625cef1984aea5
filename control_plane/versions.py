"""Drafts: a merchant's program and catalog as uploaded, checked the way `poprules check` does,
simulated and compared with what PoPs run before anything is published.

A draft is stored as the text the merchant sent, never as a compiled artefact, so what was
published can always be shown and rebuilt; the checked program is rebuilt from that text
when needed and kept for a few drafts, since checking a 1,000-rule program takes half a
second and publish, simulate and diff all need it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.storage.models import ProgramVersion
from poprules import api
from poprules.errors import InputError
from poprules.request import Request, parse_request
from wasm_build.lang.catalog import parse_catalog_csv, parse_catalog_json
from wasm_build.lang.model import Catalog, Program
from wasm_build.lang.program import parse_program

PROGRAM_FORMATS = ("yaml", "json")
CATALOG_FORMATS = ("json", "csv")
MAX_REQUESTS = 200  # per simulate or diff call, and samples per draft
_REMEMBERED = 8  # checked programs kept in this process

_programs: OrderedDict[tuple[str, str, str, str], Program] = OrderedDict()
_programs_lock = threading.Lock()


def check(program: str, program_format: str, catalog: str, catalog_format: str) -> Program:
    """The checked program, or the first problem (spec 9.3) as an `InputError` whose `source`
    says which upload it is in: "program" or "catalog"."""
    key = (program, program_format, catalog, catalog_format)
    with _programs_lock:
        found = _programs.get(key)
        if found is not None:
            _programs.move_to_end(key)
            return found

    def load_catalog(currency: str) -> Catalog:
        data = catalog.encode("utf-8")
        try:
            if catalog_format == "csv":
                return parse_catalog_csv(data, currency=currency)
            return parse_catalog_json(data, currency=currency)
        except InputError as exc:
            raise exc.from_source("catalog") from None

    try:
        checked = parse_program(program.encode("utf-8"), json_syntax=program_format == "json",
                                catalog=load_catalog)
    except InputError as exc:
        raise exc.from_source("program") from None
    with _programs_lock:
        _programs[key] = checked
        while len(_programs) > _REMEMBERED:
            _programs.popitem(last=False)
    return checked


def forget() -> None:
    """Drop the checked programs kept in this process (the benchmark times a cold publish)."""
    with _programs_lock:
        _programs.clear()


def program_of(version: ProgramVersion) -> Program:
    return check(version.program, version.program_format, version.catalog,
                 version.catalog_format)


def read_requests(program: Program, requests: Sequence[Any], field: str) -> list[Request]:
    """Every request checked against the program; the first bad one is an `InputError` whose
    field is prefixed with its place, like `samples[2].lines[0].sku`."""
    parsed = []
    for index, data in enumerate(requests):
        place = f"{field}[{index}]"
        if not isinstance(data, dict):
            raise InputError(place, "expected a request object (spec section 8)")
        try:
            parsed.append(parse_request(data, skus=program.catalog.by_sku, zone=program.zone))
        except InputError as exc:
            raise InputError(f"{place}.{exc.field}", exc.message) from None
    return parsed


_ATTEMPTS = 5  # for a version number a concurrent upload took


class Busy(Exception):
    """Every try at the next version number was taken by a concurrent upload."""


def store_version(session: Session, merchant_id: int, program: Program, *, program_text: str,
                  program_format: str, catalog_text: str, catalog_format: str,
                  samples: list[Any], token_id: int | None) -> ProgramVersion:
    """Keep a checked draft as the merchant's next version, with its audit event, committed.
    Numbers come from the unique constraint: a concurrent upload that took the number makes
    this one try the next (a few times, then `Busy`)."""
    for _ in range(_ATTEMPTS):
        version = ProgramVersion(
            merchant_id=merchant_id, number=next_number(session, merchant_id),
            program_name=program.name, program=program_text, program_format=program_format,
            catalog=catalog_text, catalog_format=catalog_format, samples=samples,
            created_by_token_id=token_id)
        session.add(version)
        try:
            session.flush()
            audit.record(session, audit.VERSION_CREATED, merchant_id=merchant_id,
                         actor_token_id=token_id, version=version.number,
                         program=program.name, rules=len(program.rules))
            session.commit()
            return version
        except (IntegrityError, OperationalError):
            session.rollback()
    raise Busy


def next_number(session: Session, merchant_id: int) -> int:
    current = session.scalar(select(func.max(ProgramVersion.number))
                             .where(ProgramVersion.merchant_id == merchant_id))
    return (current or 0) + 1


def version_json(version: ProgramVersion, program: Program | None = None) -> dict[str, Any]:
    from control_plane.wire import format_time

    shown: dict[str, Any] = {"number": version.number, "program": version.program_name,
                             "samples": len(version.samples),
                             "created_at": format_time(version.created_at)}
    if program is not None:
        shown["rules"] = len(program.rules)
        shown["items"] = len(program.catalog.items)
    return shown


def diff(live: Sequence[dict[str, Any] | None],
         draft: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per request, what the draft changes against the live release: the totals and rule
    reports that differ, with the change in minor units. Where nothing is live, or the live
    release cannot read the request (a sku it does not know), every figure is new."""
    out: list[dict[str, Any]] = []
    for index, (before, after) in enumerate(zip(live, draft, strict=True)):
        if "error" in after:
            out.append({"index": index, "changed": False, "error": after["error"]})
            continue
        if before is not None and "error" in before:
            before = None
        totals = {}
        for name, value in after["totals"].items():
            old = before["totals"].get(name) if before else None
            if old != value:
                totals[name] = {"live": old, "draft": value,
                                "change": value - (old or 0)}
        old_rules = {r["rule"]: r for r in before["rules"]} if before else {}
        rules = []
        for report in after["rules"]:
            previous = old_rules.pop(report["rule"], None)
            if previous != report:
                rules.append({"rule": report["rule"], "live": previous, "draft": report,
                              "change": report.get("amount", 0) - (previous or {}).get("amount", 0)})
        rules += [{"rule": rule, "live": report, "draft": None, "change": -report.get("amount", 0)}
                  for rule, report in old_rules.items()]
        out.append({"index": index, "changed": bool(totals or rules), "totals": totals,
                    "rules": rules})
    return out


def answer(program: Program, data: dict[str, Any]) -> dict[str, Any]:
    """The quote a PoP would give (the compiled module; the reference evaluator past the
    module's 64-bit figures, as `poprules quote` does), or the request's error."""
    try:
        return api.quote(program, data)
    except InputError as exc:
        return {"error": exc.to_json()}
