"""Wallets, claims of offline tokens and throttles (docs/ledger.md). The merchant is always
the caller's; a customer is known by the keyed hash of the shop's id, and where a shop's back
end gives the raw id (a lookup, a claim) it travels in the body — never in a URL, which access
logs keep — is hashed at once, and is neither stored nor logged.
---
schemas:
  WalletEntry:
    type: object
    required: [rule, amount, vests_at, lapses_at]
    properties:
      rule: {type: [string, "null"]}
      amount: {type: integer, description: minor units}
      vests_at: {type: [string, "null"], format: date-time}
      lapses_at: {type: [string, "null"], format: date-time, description: null when it never lapses}
  Wallet:
    type: object
    required: [customer, at, available, pending, lapsing_soon, lapsed, credits, points,
               history, next]
    properties:
      customer: {type: string, pattern: "^[0-9a-f]{64}$"}
      at: {type: string, format: date-time, description: the time vesting and lapse are judged at}
      available: {type: integer, description: "cashback vested and not lapsed, minor units"}
      pending: {type: array, items: WalletEntry, description: not vested yet, soonest first}
      lapsing_soon: {type: array, items: WalletEntry, description: available, lapsing within 7 days}
      lapsed: {type: integer}
      credits:
        type: array
        description: available credits, by restriction and lapse
        items:
          type: object
          required: [toward, amount, lapses_at]
          properties:
            toward: {type: [string, "null"]}
            amount: {type: integer}
            lapses_at: {type: [string, "null"], format: date-time}
      points: {type: integer}
      history:
        type: array
        description: journals, newest first
        items:
          type: object
          required: [id, kind, account, amount, receipt, at]
          properties:
            id: {type: integer}
            kind: {type: string, enum: [cashback, credit, points, reversal, claim]}
            account: {type: string, enum: [wallet, credit, points]}
            amount: {type: integer, description: "signed: a reversal is negative"}
            receipt: {type: [string, "null"], description: the receipt id it came from}
            at: {type: string, format: date-time}
      next: {type: [integer, "null"], description: "`after` for the next page of history"}
  ThrottleLimit:
    type: object
    required: [window, max_claims, max_amount]
    properties:
      window: {type: integer, minimum: 1, maximum: 31622400, description: seconds}
      max_claims: {type: [integer, "null"], minimum: 0, maximum: 2147483647}
      max_amount: {type: [integer, "null"], minimum: 0, maximum: 9007199254740991,
                   description: cashback in minor units}
  Throttles:
    type: object
    required: [customer, claim, device]
    properties:
      customer: {anyOf: [ThrottleLimit, {type: "null"}]}
      claim: {anyOf: [ThrottleLimit, {type: "null"}]}
      device: {anyOf: [ThrottleLimit, {type: "null"}]}
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request

from control_plane import ledger, throttles
from control_plane.auth import caller, require
from control_plane.context import control_plane, session
from control_plane.coupon_key import customer_hash, customer_key
from control_plane.errors import ApiError, invalid
from control_plane.throttles import Limit
from control_plane.wire import MAX_ID, json_body, parse_time, query_int
from poprules.customer_token import check_id
from poprules.errors import InputError
from poprules.request import is_integer, is_text

bp = Blueprint("wallets", __name__, url_prefix="/v1")

HASH = re.compile(r"[0-9a-f]{64}")
PAGE, PAGE_LIMIT = 50, 500
MAX_WINDOW = 366 * 86_400
MAX_AMOUNT = 2**53 - 1  # exact in every JSON reader
MAX_CLAIM_TOKEN = 1000
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
LIMIT_FIELDS = ("window", throttles.MAX_CLAIMS, throttles.MAX_AMOUNT)


def _subject_hash(body: dict[str, Any]) -> str:
    """The caller's customer hash of the body's `subject`, the shop's id of the shopper."""
    if "subject" not in body:
        raise invalid("subject", "required: the shop's id of the shopper")
    try:
        subject = check_id("subject", body["subject"])
    except InputError as exc:
        raise invalid(exc.field, exc.message) from None
    merchant_id = caller().merchant_id
    return customer_hash(customer_key(control_plane().settings.key_dir, merchant_id), subject)


def _at() -> datetime:
    """The query's `at`, within years the ledger's arithmetic (a week ahead) and the wire's
    four-digit years can hold; by default the ledger's clock."""
    if "at" not in request.args:
        return ledger.now()
    at = parse_time("at", request.args["at"])
    if not EARLIEST <= at < LATEST:
        raise invalid("at", f"expected a time from {EARLIEST.year} to {LATEST.year - 1}")
    return at


def _wallet(customer: str) -> dict[str, Any]:
    at = _at()
    limit = query_int("limit", PAGE, low=1, high=PAGE_LIMIT)
    after = query_int("after", 0, low=1, high=MAX_ID) if "after" in request.args else None
    return ledger.wallet(session(), caller().merchant_id, customer, at, limit=limit,
                         after=after)


@bp.get("/wallets/<customer>")
@require("read")
def get_wallet(customer: str) -> dict[str, Any]:
    """A customer without entries has an empty wallet, not a 404: whether a hash is a
    shopper of the merchant's is not worth a distinct answer.
    ---
    get:
      summary: A customer's wallet by customer hash (the customer token's `sub`)
      parameters:
        - {name: customer, in: path, required: true, schema: {type: string, pattern: "^[0-9a-f]{64}$"}}
        - {name: at, in: query, schema: {type: string, format: date-time},
           description: "the time to judge vesting and lapse at, 1970 to 9998 (default: now);
             every posting booked so far counts"}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 50},
           description: history entries per page}
        - {name: after, in: query, schema: {type: integer, minimum: 1, maximum: 2147483647},
           description: the previous page's `next`}
      responses:
        200: {description: The wallet, content: {application/json: {schema: Wallet}}}
    """
    if not HASH.fullmatch(customer):
        raise invalid("customer", "expected a customer hash: 64 lowercase hex digits")
    return _wallet(customer)


@bp.post("/wallets/lookup")
@require("read")
def post_wallet_lookup() -> dict[str, Any]:
    """A POST, not a GET with the id in the query string: the raw id must never reach an
    access log, and the request line is what access logs keep.
    ---
    post:
      summary: A customer's wallet by the shop's id of the shopper, hashed here and not kept
      parameters:
        - {name: at, in: query, schema: {type: string, format: date-time},
           description: "the time to judge vesting and lapse at, 1970 to 9998 (default: now);
             every posting booked so far counts"}
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 50},
           description: history entries per page}
        - {name: after, in: query, schema: {type: integer, minimum: 1, maximum: 2147483647},
           description: the previous page's `next`}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [subject]
              additionalProperties: false
              properties:
                subject: {type: string, minLength: 1, maxLength: 200}
      responses:
        200: {description: The wallet, content: {application/json: {schema: Wallet}}}
    """
    return _wallet(_subject_hash(json_body(frozenset({"subject"}))))


@bp.post("/claims")
@require("publish")
def post_claim() -> dict[str, Any]:
    """The merchant's back end relays the shopper's scan of the QR code a checkout showed,
    with the id of the shopper now signed in.
    ---
    post:
      summary: Claim an offline claim token's cashback for a customer, once
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [claim_token, subject]
              additionalProperties: false
              properties:
                claim_token: {type: string, minLength: 1, maxLength: 1000,
                              description: the token as the QR code carries it (ASCII)}
                subject: {type: string, minLength: 1, maxLength: 200,
                          description: "the shop's id of the shopper; hashed, never kept"}
                device: {type: [string, "null"], pattern: "^[0-9a-f]{64}$",
                         description: a hash of the shopper's device, for the device throttle}
      responses:
        200:
          description: Claimed; what moved to the customer's wallet
          content:
            application/json:
              schema:
                type: object
                required: [customer, receipt, amount, entries]
                properties:
                  customer: {type: string, pattern: "^[0-9a-f]{64}$"}
                  receipt: {type: [string, "null"]}
                  amount: {type: integer}
                  entries: {type: array, items: WalletEntry}
        404: {description: No booked receipt carries the token (yet), content: {application/json: {schema: Error}}}
        409: {description: Claimed already; nothing changed, content: {application/json: {schema: Error}}}
        429: {description: "Over a throttle (the message names it): refused, nothing moved; retry later", content: {application/json: {schema: Error}}}
    """
    body = json_body(frozenset({"claim_token", "subject", "device"}))
    token = body.get("claim_token")
    if not is_text(token) or not 1 <= len(token) <= MAX_CLAIM_TOKEN or not token.isascii():
        raise invalid("claim_token", f"required: the claim token, 1 to {MAX_CLAIM_TOKEN} ASCII "
                      "characters")
    device = body.get("device")
    if device is not None and (not is_text(device) or not HASH.fullmatch(device)):
        raise invalid("device", "expected a device hash: 64 lowercase hex digits")
    customer = _subject_hash(body)
    who = caller()
    try:
        claimed = ledger.claim(session(), who.merchant_id, token, customer, device,
                               ledger.now(), actor_token_id=who.token_id)
    except ledger.ClaimHeld as held:
        session().commit()  # the claim.refused event; nothing else was written
        raise ApiError(429, None, held.reason) from None
    session().commit()
    return claimed


def _bounded(field: str, value: Any, high: int) -> int | None:
    if value is not None and (not is_integer(value) or not 0 <= value <= high):
        raise invalid(field, f"expected a whole number from 0 to {high}, or null")
    return value


def _limit(scope: str, value: Any) -> Limit:
    if not isinstance(value, dict):
        raise invalid(scope, "expected {window, max_claims, max_amount} or null")
    for key in value:
        if key not in LIMIT_FIELDS:
            raise invalid(f"{scope}.{key}", f"unknown field; expected one of: "
                          f"{', '.join(LIMIT_FIELDS)}")
    window = value.get("window")
    if not is_integer(window) or not 1 <= window <= MAX_WINDOW:
        raise invalid(f"{scope}.window", f"required: seconds, from 1 to {MAX_WINDOW} (366 days)")
    limit = Limit(window, _bounded(f"{scope}.max_claims", value.get("max_claims"), MAX_ID),
                  _bounded(f"{scope}.max_amount", value.get("max_amount"), MAX_AMOUNT))
    if scope == throttles.CLAIM and limit.max_claims is not None:
        raise invalid("claim.max_claims", "a claim token is claimed once at most; only "
                      "max_amount applies to it")
    if limit.max_claims is None and limit.max_amount is None:
        raise invalid(scope, "give max_claims, max_amount or both")
    return limit


@bp.put("/merchants/<int:merchant_id>/throttles")
@require("publish")
def put_throttles(merchant_id: int) -> dict[str, Any]:
    """The whole configuration at once, so what a merchant reads back is exactly what it
    sent; a scope left out has no throttle.
    ---
    put:
      summary: Set the merchant's throttles on booked cashback and claims
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              description: "Each scope null or {window, max_claims?, max_amount?} with at
                least one limit; claim takes max_amount only (a token is claimed once)"
              properties:
                customer:
                  type: [object, "null"]
                  required: [window]
                  additionalProperties: false
                  properties:
                    window: {type: integer, minimum: 1, maximum: 31622400}
                    max_claims: {type: [integer, "null"], minimum: 0, maximum: 2147483647}
                    max_amount: {type: [integer, "null"], minimum: 0, maximum: 9007199254740991}
                claim:
                  type: [object, "null"]
                  required: [window]
                  additionalProperties: false
                  properties:
                    window: {type: integer, minimum: 1, maximum: 31622400}
                    max_claims: {type: "null"}
                    max_amount: {type: [integer, "null"], minimum: 0, maximum: 9007199254740991}
                device:
                  type: [object, "null"]
                  required: [window]
                  additionalProperties: false
                  properties:
                    window: {type: integer, minimum: 1, maximum: 31622400}
                    max_claims: {type: [integer, "null"], minimum: 0, maximum: 2147483647}
                    max_amount: {type: [integer, "null"], minimum: 0, maximum: 9007199254740991}
      responses:
        200: {description: The throttles now, content: {application/json: {schema: Throttles}}}
    """
    body = json_body(frozenset(throttles.SCOPES))
    new = {scope: _limit(scope, value) for scope, value in body.items() if value is not None}
    throttles.replace(session(), merchant_id, new, actor_token_id=caller().token_id)
    session().commit()
    return throttles.as_json(new)


@bp.get("/merchants/<int:merchant_id>/throttles")
@require("read")
def get_throttles(merchant_id: int) -> dict[str, Any]:
    """
    ---
    get:
      summary: The merchant's throttles (null for a scope without one)
      responses:
        200: {description: The throttles, content: {application/json: {schema: Throttles}}}
    """
    return throttles.as_json(throttles.limits(session(), merchant_id))
