"""Signing in to the console with an API token, and what each page requires.

The cookie keeps the token's SHA-256 (what the database keeps too), never the token: a
session cookie is signed, not encrypted, and ends up in places a secret must not. Every
request looks the token up again, so a revoked token's sessions end at once and scopes are
always the token's current ones. A session lasts `SIGNED_IN_FOR` at most.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import flash, g, redirect, request, send_from_directory, session, url_for
from sqlalchemy import select
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from control_plane.auth import SCOPES, hash_token, public
from control_plane.console.web import STATIC, console, page
from control_plane.context import session as db_session
from control_plane.storage.models import ApiToken, Merchant

View = TypeVar("View", bound=Callable[..., Any])

SIGNED_IN_FOR = 12 * 3600  # seconds
MAX_TOKEN = 200  # far longer than any token, short enough to refuse junk early
TOKEN_KEY, SINCE_KEY = "token", "since"


@dataclass(frozen=True)
class Visitor:
    """The signed-in merchant and the token it signed in with."""

    token_id: int
    token_name: str
    merchant_id: int
    merchant_name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def visitor() -> Visitor:
    """The visitor of the current page (set by `signed_in`)."""
    who: Visitor = g.visitor
    return who


def _current() -> Visitor | None:
    digest, since = session.get(TOKEN_KEY), session.get(SINCE_KEY)
    if not isinstance(digest, str) or not isinstance(since, int) \
            or not 0 <= time.time() - since < SIGNED_IN_FOR:
        return None
    row = db_session().execute(
        select(ApiToken, Merchant.name).join(Merchant, Merchant.id == ApiToken.merchant_id)
        .where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))).first()
    if row is None:
        return None
    token, merchant_name = row
    return Visitor(token.id, token.name, token.merchant_id, merchant_name, token.scope_set)


def refusal(scope: str, what: str) -> Response:
    return page("console/error.html", 403, title="Your token cannot do this",
                message=f"{what} needs a token with the {scope} scope, and the token you "
                        "signed in with does not have it. Sign in with another token, or ask "
                        "for one with this scope.")


SCOPE_NEEDS = {"read": "This page", "publish": "Publishing and rolling back",
               "audit": "The audit trail"}


def signed_in(scope: str) -> Callable[[View], View]:
    """Admit a visitor signed in with a live token that has `scope`; send anyone else to
    the sign-in page, and refuse a token without the scope with a page that says so."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            who = _current()
            if who is None:
                if TOKEN_KEY in session:
                    flash("Your session has ended; please sign in again.", "info")
                    session.pop(TOKEN_KEY)
                return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")),
                                303)
            g.visitor = who
            if not who.may(scope):
                return refusal(scope, SCOPE_NEEDS[scope])
            return view(*args, **kwargs)

        # Not an API scope: test_access and the OpenAPI document read `required_scope`, and
        # these pages are neither bearer-token endpoints nor open to anyone.
        guarded.required_scope = f"console:{scope}"  # type: ignore[attr-defined]
        return cast(View, guarded)

    return decorate


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page only, never another site."""
    if target and target.startswith(console.url_prefix or "/console") \
            and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.releases")


@console.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in() -> Response:
    """Public: the form itself; the token it takes is what authenticates."""
    target = request.values.get("next")
    if request.method == "GET":
        return page("console/sign_in.html", next=target)
    token = request.form.get("token", "").strip()
    error = None
    if not token:
        error = "Paste your API token (it starts with prt_)."
    elif len(token) > MAX_TOKEN:
        error = "That is longer than any API token; paste the token alone."
    else:
        digest = hash_token(token)
        live = db_session().scalar(select(ApiToken.id).where(
            ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))
        if live is None:
            error = "This token is unknown or has been revoked."
        else:
            session.clear()  # a fresh CSRF token, and nothing of a previous visitor
            session[TOKEN_KEY], session[SINCE_KEY] = digest, int(time.time())
            return redirect(_safe_next(target), 303)
    return page("console/sign_in.html", 401, next=target, error=error)


@console.route("/sign-out", methods=["GET", "POST"])
@public
def sign_out() -> Response:
    """Public, so that a signed-out visitor's form does not loop; a GET signs no one out
    (a link from another site must not), the POST carries the CSRF token."""
    if request.method == "POST":
        session.clear()
        flash("You are signed out.", "info")
    return redirect(url_for("console.sign_in"), 303)


@console.get("")
@signed_in("read")
def home() -> Response:
    return redirect(url_for("console.releases"), 303)


@console.get("/console.css")
@public
def stylesheet() -> Response:
    response = send_from_directory(STATIC, "console.css", max_age=300)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@console.route("/<path:rest>", methods=["GET", "POST"])
@public
def not_found(rest: str) -> Response:
    """Any other console address: an HTML page, not the API's JSON 404."""
    raise NotFound("There is no console page at this address.")

