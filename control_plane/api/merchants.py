"""A merchant and its API tokens. Merchants themselves are made by the operator
(`poprules cp bootstrap`); a merchant's tokens are made and revoked through the API.
---
schemas:
  Merchant:
    type: object
    required: [id, name, created_at]
    properties:
      id: {type: integer}
      name: {type: string}
      created_at: {type: string, format: date-time}
  Token:
    type: object
    required: [id, name, scopes, created_at, revoked_at]
    properties:
      id: {type: integer}
      name: {type: string}
      scopes: {type: array, items: {type: string, enum: [publish, read, audit]}}
      created_at: {type: string, format: date-time}
      revoked_at: {type: [string, "null"], format: date-time}
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for
from sqlalchemy import select

from control_plane.auth import SCOPES, caller, require
from control_plane.context import session
from control_plane.errors import ApiError, invalid
from control_plane.storage.models import ApiToken, Merchant
from control_plane.tokens import (
    NAME_LIMIT,
    create_token,
    merchant_json,
    revoke_token,
    token_json,
)
from control_plane.wire import json_body

bp = Blueprint("merchants", __name__, url_prefix="/v1/merchants")


def _merchant(merchant_id: int) -> Merchant:
    merchant = session().get(Merchant, merchant_id)
    if merchant is None:  # its token outlived it: not possible while merchants are kept
        raise ApiError(404, "merchant_id", "no such merchant")
    return merchant


@bp.get("/<int:merchant_id>")
@require("read")
def get_merchant(merchant_id: int) -> dict[str, Any]:
    """
    ---
    get:
      summary: The caller's merchant
      responses:
        200: {description: The merchant, content: {application/json: {schema: Merchant}}}
    """
    return merchant_json(_merchant(merchant_id))


@bp.get("/<int:merchant_id>/tokens")
@require("read")
def list_tokens(merchant_id: int) -> dict[str, Any]:
    """The merchant's tokens, revoked ones included; never their secrets.
    ---
    get:
      summary: The merchant's tokens, revoked ones included (never their secrets)
      responses:
        200:
          description: Every token, oldest first
          content:
            application/json:
              schema:
                type: object
                required: [tokens]
                properties:
                  tokens: {type: array, items: Token}
    """
    rows = session().scalars(select(ApiToken).where(ApiToken.merchant_id == merchant_id)
                             .order_by(ApiToken.id))
    return {"tokens": [token_json(t) for t in rows]}


def _scopes(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise invalid("scopes", f"a non-empty list of scopes from: {', '.join(SCOPES)}")
    for index, scope in enumerate(value):
        if scope not in SCOPES:
            raise invalid(f"scopes[{index}]",
                          f"unknown scope {scope!r}; expected one of: {', '.join(SCOPES)}")
    if len(set(value)) != len(value):
        raise invalid("scopes", "a scope is listed twice")
    return frozenset(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_LIMIT:
        raise invalid("name", f"a non-blank text of at most {NAME_LIMIT} characters")
    return value.strip()


@bp.post("/<int:merchant_id>/tokens")
@require("publish")
def post_token(merchant_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A new token for the caller's merchant. Its secret is in this answer and nowhere
    else. A token can grant only scopes it holds itself, so a leaked publish token cannot
    mint an audit token.
    ---
    post:
      summary: A new token; its secret is in this answer only
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [scopes]
              additionalProperties: false
              properties:
                scopes:
                  type: array
                  minItems: 1
                  uniqueItems: true
                  items: {type: string, enum: [publish, read, audit]}
                  description: At most the scopes the calling token holds (else 403)
                name: {type: string, minLength: 1, maxLength: 100, pattern: '\\S',
                       default: api token}
      responses:
        201:
          description: The token, with its secret `token`, shown this once
          headers:
            Location: {schema: {type: string}, description: The token's URL}
          content:
            application/json:
              schema:
                allOf:
                  - Token
                  - type: object
                    required: [token]
                    properties:
                      token: {type: string, pattern: "^prt_[A-Za-z0-9_-]{43}$"}
    """
    body = json_body(frozenset({"scopes", "name"}))
    if "scopes" not in body:
        raise invalid("scopes", "required")
    scopes = _scopes(body["scopes"])
    name = _name(body.get("name", "api token"))
    who = caller()
    beyond = sorted(scopes - who.scopes)
    if beyond:
        raise ApiError(403, "scopes",
                       f"this token cannot grant scopes it does not hold: {', '.join(beyond)}")
    token, secret = create_token(session(), _merchant(merchant_id), scopes, name,
                                 actor_token_id=who.token_id)
    session().commit()
    location = url_for(".get_token", merchant_id=merchant_id, token_id=token.id)
    return {**token_json(token), "token": secret}, 201, {"Location": location}


def _token(merchant_id: int, token_id: int) -> ApiToken:
    token = session().get(ApiToken, token_id)
    if token is None or token.merchant_id != merchant_id:
        raise ApiError(404, "token_id", "no such token")
    return token


@bp.get("/<int:merchant_id>/tokens/<int:token_id>")
@require("read")
def get_token(merchant_id: int, token_id: int) -> dict[str, Any]:
    """
    ---
    get:
      summary: One token (never its secret)
      responses:
        200: {description: The token, content: {application/json: {schema: Token}}}
    """
    return token_json(_token(merchant_id, token_id))


@bp.delete("/<int:merchant_id>/tokens/<int:token_id>")
@require("publish")
def delete_token(merchant_id: int, token_id: int) -> dict[str, Any]:
    """Revoke a token: it stops working at once and stays listed. Revoking a revoked token
    changes nothing.
    ---
    delete:
      summary: Revoke a token, at once
      responses:
        200:
          description: The token, revoked
          content: {application/json: {schema: Token}}
    """
    token = _token(merchant_id, token_id)
    if token.revoked_at is None:
        revoke_token(session(), token, actor_token_id=caller().token_id)
        session().commit()
    return token_json(token)
