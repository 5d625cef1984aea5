"""Publishing from the console: a draft's program and catalog (and the sample requests it is
checked and compared on), checked exactly as POST /v1/merchants/<id>/versions checks them,
compared with what PoPs run now as the versions API's diff does, and published with
publishing.publish.

A draft that does not check is shown with its one problem at its rule, line and column, and
nothing is written. A draft that checks is kept as a version before it is published, as the
API's two calls do: a publish refused afterwards (the compiled module and the reference
disagree on a sample) leaves that checked draft, and its `version.created` event, behind.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from control_plane.console import programs
from control_plane.console.signin import refusal, signed_in, visitor
from control_plane.console.web import console, page
from control_plane.context import session
from control_plane.errors import ApiError, invalid, invalid_input
from control_plane.publishing import checked_group, publish
from control_plane.releases import EVERY_POP
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
)
from poprules.errors import InputError
from poprules.jsonio import JSONNumber
from wasm_build.lang.model import Points, Program

ACTIONS = ("check", "preview", "publish")


@dataclass
class Draft:
    """The form's fields, as sent (or as the live version has them)."""

    program: str = ""
    program_format: str = PROGRAM_FORMATS[0]
    catalog: str = ""
    catalog_format: str = CATALOG_FORMATS[0]
    samples: str = "[]"
    group: str = EVERY_POP


@dataclass
class Problem:
    """The draft's first problem, located as the API's 422 locates it."""

    message: str
    field: str | None
    source: str | None = None
    rule: str | None = None
    line: int | None = None
    column: int | None = None
    text: str | None = None
    # The lines around the problem: (number, text, whether it is the bad one).
    listing: list[tuple[int, str, bool]] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, exc: ApiError, draft: Draft) -> Problem:
        where = exc.location
        problem = cls(exc.message, exc.field, where.get("source"), where.get("rule"),
                      where.get("line"), where.get("column"), where.get("text"))
        sources = {"program": draft.program, "catalog": draft.catalog, "samples": draft.samples}
        if problem.line is not None and problem.source in sources:
            problem.listing = listing(sources[problem.source], problem.line)
        return problem

    def marked(self, text: str) -> tuple[str, str, str]:
        """The bad line split around what is at fault: the error's `text` where the line
        has it, else the character at the column (else nothing is marked)."""
        if self.text and self.text in text:
            start = text.index(self.text)
            return text[:start], self.text, text[start + len(self.text):]
        if self.column is not None and 1 <= self.column <= len(text):
            at = self.column - 1
            return text[:at], text[at], text[at + 1:]
        return text, "", ""


CONTEXT = 4  # lines shown either side of a bad one


def listing(text: str, line: int) -> list[tuple[int, str, bool]]:
    """The numbered lines around `line` (1-based), the bad one flagged."""
    lines = text.splitlines() or [""]
    first, last = max(1, line - CONTEXT), min(len(lines), line + CONTEXT)
    return [(n, lines[n - 1], n == line) for n in range(first, last + 1)]


def _form() -> Draft:
    form = request.form

    def text(name: str) -> str:
        # Browsers send a textarea's lines ending in CRLF (HTML's rule); the draft is kept
        # with the LF endings the merchant's files have.
        return form.get(name, "").replace("\r\n", "\n")

    return Draft(text("program"), form.get("program_format", PROGRAM_FORMATS[0]),
                 text("catalog"), form.get("catalog_format", CATALOG_FORMATS[0]),
                 text("samples"), form.get("group", EVERY_POP).strip() or EVERY_POP)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} is repeated")
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_samples(text: str) -> list[Any]:
    """The sample requests, read as the API reads a JSON body: exact numbers, no repeated
    keys; an error where the JSON breaks."""
    if not text.strip():
        return []
    try:
        value = json.loads(text, object_pairs_hook=_no_repeats, parse_float=JSONNumber,
                           parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "samples", f"not valid JSON: {exc.msg}", location={
            "source": "samples", "line": exc.lineno, "column": exc.colno}) from None
    except (ValueError, RecursionError) as exc:
        raise invalid("samples", f"not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise invalid("samples", "a JSON list of requests (spec section 8), [] for none")
    if len(value) > MAX_REQUESTS:
        raise invalid("samples", f"at most {MAX_REQUESTS} requests, found {len(value)}")
    return value


def checked(draft: Draft) -> tuple[Program, list[Any]]:
    """The checked program and samples, or the first problem as the API's 422."""
    for name in ("program", "catalog"):
        if not getattr(draft, name).strip():
            raise invalid(name, f"required: the {name}'s text")
    if draft.program_format not in PROGRAM_FORMATS:
        raise invalid("program_format", f"one of: {', '.join(PROGRAM_FORMATS)}")
    if draft.catalog_format not in CATALOG_FORMATS:
        raise invalid("catalog_format", f"one of: {', '.join(CATALOG_FORMATS)}")
    samples = read_samples(draft.samples)
    try:
        program = check(draft.program, draft.program_format, draft.catalog,
                        draft.catalog_format)
        read_requests(program, samples, "samples")
    except InputError as exc:
        raise invalid_input(exc, "samples") from None
    return program, samples


def _points_rules(*checked_programs: Program) -> frozenset[str]:
    return frozenset(rule.id for program in checked_programs for rule in program.rules
                     if isinstance(rule.reward, Points))


def _describe(data: Any) -> str:
    """A request, in a few words: how many lines, and when."""
    if not isinstance(data, dict):
        return "not a request"
    lines = data.get("lines")
    count = len(lines) if isinstance(lines, list) else 0
    return f"{count} line{'' if count == 1 else 's'}, at {data.get('at', '?')}"


def preview(program: Program, samples: list[Any], group: str) -> dict[str, Any]:
    """What publishing would change, per sample request and per rule, against what PoPs of
    `group` run now: the versions API's diff, over the draft's samples."""
    db, merchant_id = session(), visitor().merchant_id
    drafts = [answer(program, data) for data in samples]
    found = programs.live(db, merchant_id, group)
    against = None
    points = _points_rules(program)
    before: list[dict[str, Any] | None] = [None] * len(samples)
    if found is not None:
        release, version = found
        live_program = program_of(version)
        before = [answer(live_program, data) for data in samples]
        against = {"release": release.number, "version": version.number}
        points |= _points_rules(live_program)
    changes = diff(before, drafts)
    for change, data in zip(changes, samples, strict=True):
        change["described"] = _describe(data)
    return {"against": against, "requests": changes, "points_rules": points,
            "changed": sum(1 for change in changes if change["changed"]),
            "currency": (program.currency, program.places)}


def _store(draft: Draft, program: Program, samples: list[Any]) -> ProgramVersion:
    """Keep the checked draft as the next version, as POST .../versions does."""
    who = visitor()
    try:
        return store_version(session(), who.merchant_id, program, program_text=draft.program,
                             program_format=draft.program_format, catalog_text=draft.catalog,
                             catalog_format=draft.catalog_format, samples=samples,
                             token_id=who.token_id)
    except Busy:
        raise ApiError(503, None, "Too many uploads at once; try again in a moment.") from None


def _prefilled() -> Draft:
    found = programs.live(session(), visitor().merchant_id)
    if found is None:
        return Draft()
    version = found[1]
    return Draft(version.program, version.program_format, version.catalog,
                 version.catalog_format, json.dumps(version.samples, indent=2,
                                                    ensure_ascii=False))


def _form_page(draft: Draft, status: int = 200, **context: Any) -> Response:
    found = programs.live(session(), visitor().merchant_id)
    return page("console/publish.html", status, draft=draft,
                live=None if found is None else found[0],
                program_formats=PROGRAM_FORMATS, catalog_formats=CATALOG_FORMATS,
                can_publish=visitor().may("publish"), **context)


@console.route("/publish", methods=["GET", "POST"])
@signed_in("read")
def publish_draft() -> Response:
    """Check and Preview need the read scope, as the API's simulate and diff do; Publish
    needs publish."""
    if request.method == "GET":
        return _form_page(_prefilled())
    draft = _form()
    action = request.form.get("action", "")
    if action not in ACTIONS:
        return _form_page(draft, 422, problem=Problem(
            "Choose Check, Preview against live or Publish.", "action"))
    if action == "publish" and not visitor().may("publish"):
        return refusal("publish", "Publishing")
    try:
        group = checked_group(draft.group)
        program, samples = checked(draft)
    except ApiError as exc:
        return _form_page(draft, exc.status, problem=Problem.of(exc, draft))
    if action == "check":
        return _form_page(draft, checked_ok={
            "program": program.name, "rules": len(program.rules),
            "catalog_items": len(program.catalog.items), "samples": len(samples)})
    if action == "preview":
        return _form_page(draft, preview=preview(program, samples, group))
    version = _store(draft, program, samples)
    try:
        made = publish(session(), version, group=group, actor_token_id=visitor().token_id)
    except ApiError as exc:
        session().rollback()
        return _form_page(draft, exc.status, problem=Problem(
            f"{exc.message} (Your draft was kept as version {version.number}; nothing was "
            "published.)", exc.field))
    flash(f"Release {made.number} published from version {version.number}.", "success")
    return redirect(url_for("console.release", number=made.number), 303)
