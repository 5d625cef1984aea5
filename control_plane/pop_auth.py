"""How a PoP calls the control plane: with the secret it got at enrollment.

A PoP secret is `prp_` and 43 characters of base64url, like a merchant token but of another
kind, so neither can stand in for the other; only its SHA-256 is stored (`pops.token_hash`).
Views a PoP calls declare `@require_pop`; their route's `pop_id` must be the caller's own.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request
from sqlalchemy import select

from control_plane.context import session
from control_plane.errors import ApiError
from control_plane.storage.models import Pop

POP_TOKEN_PREFIX = "prp_"

View = TypeVar("View", bound=Callable[..., Any])


def new_pop_token() -> tuple[str, str]:
    """A fresh PoP secret and the hash stored in its place."""
    token = POP_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode("utf-8")).hexdigest()


def calling_pop() -> Pop:
    """The PoP of the current request (set by `require_pop`)."""
    pop: Pop = g.calling_pop
    return pop


def require_pop(view: View) -> View:
    """Admit only an enrolled PoP's secret, and only for its own `pop_id`."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="poprules-pop"'}
        if scheme.lower() != "bearer" or not token.strip().startswith(POP_TOKEN_PREFIX):
            raise ApiError(401, "authorization",
                           "a PoP secret is required: Authorization: Bearer prp_...", challenge)
        digest = hashlib.sha256(token.strip().encode("utf-8")).hexdigest()
        pop = session().scalar(select(Pop).where(Pop.token_hash == digest))
        if pop is None:
            raise ApiError(401, "authorization", "unknown PoP secret", challenge)
        if "pop_id" in kwargs and kwargs["pop_id"] != pop.id:
            raise ApiError(403, "pop_id", "this secret belongs to another PoP")
        g.calling_pop = pop
        return view(*args, **kwargs)

    guarded.required_scope = "pop"  # type: ignore[attr-defined]
    return cast(View, guarded)
