"""API tokens and the one check every endpoint makes.

A token is `prt_` and 43 characters of base64url (256 random bits). It is shown once and only
its SHA-256 is kept: with that much randomness a plain hash cannot be reversed or guessed,
so a slow password hash would buy nothing but latency on every request.

Each view declares what it needs with `@require(scope)` (or `@public`); a test walks the URL
map and fails on any endpoint that declares neither.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import g, request
from sqlalchemy import select

from control_plane.context import session
from control_plane.errors import ApiError
from control_plane.storage.models import ApiToken

SCOPES = ("publish", "read", "audit")
TOKEN_PREFIX = "prt_"

View = TypeVar("View", bound=Callable[..., Any])


def new_token() -> tuple[str, str]:
    """A fresh token and the hash that is stored in its place."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's id, its merchant and what it may do."""

    token_id: int
    merchant_id: int
    scopes: frozenset[str]


def caller() -> Caller:
    """The caller of the current request (set by `require`)."""
    who: Caller = g.caller
    return who


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "authorization", message, {"WWW-Authenticate": 'Bearer realm="poprules"'})


def _authenticate() -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("an API token is required: Authorization: Bearer <token>")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be: Bearer <token>")
    row = session().scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip()),
                                                  ApiToken.revoked_at.is_(None)))
    if row is None:
        raise _unauthorized("unknown or revoked token")
    return Caller(row.id, row.merchant_id, row.scope_set)


def require(scope: str, *, merchant_arg: str = "merchant_id") -> Callable[[View], View]:
    """Admit a request only with a live token that has `scope`, and, when the route names a
    merchant (`merchant_arg`), only for that token's own merchant. Another merchant, whether
    it exists or not, is 403: an id is never confirmed to outsiders."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            who = _authenticate()
            if scope not in who.scopes:
                raise ApiError(403, "authorization", f"this token does not have the {scope} scope")
            if merchant_arg in kwargs and kwargs[merchant_arg] != who.merchant_id:
                raise ApiError(403, merchant_arg, "this token belongs to another merchant")
            g.caller = who
            return view(*args, **kwargs)

        guarded.required_scope = scope  # type: ignore[attr-defined]
        return cast(View, guarded)

    return decorate


ANY_SCOPE = "any"  # the `required_scope` of a view any live merchant token may call


def any_token(view: View) -> View:
    """Admit any live merchant token, whatever its scopes: knowing who one is needs none."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        g.caller = _authenticate()
        return view(*args, **kwargs)

    guarded.required_scope = ANY_SCOPE  # type: ignore[attr-defined]
    return cast(View, guarded)


def public(view: View) -> View:
    """Mark a view that anyone may call (health, the public keyring)."""
    view.public = True  # type: ignore[attr-defined]
    return view
