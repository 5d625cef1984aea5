"""Customer tokens, issued to the caller's merchant (its shop's back end, which knows who
the shopper is) and handed to the shopper's browser, which presents them to a PoP."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from control_plane.auth import caller, require
from control_plane.context import session
from control_plane.customer_tokens import DEFAULT_TTL, MAX_TTL, MIN_TTL, issue
from control_plane.errors import invalid
from control_plane.wire import format_time, json_body
from poprules.customer_token import check_customer, check_id
from poprules.errors import InputError
from poprules.request import is_integer

bp = Blueprint("customer_tokens", __name__, url_prefix="/v1/customer-tokens")


def _opaque_id(field: str, value: Any) -> str:
    try:
        return check_id(field, value)
    except InputError as exc:
        raise invalid(exc.field, exc.message) from None


def _customer(body: dict[str, Any], referrer: str | None) -> dict[str, Any]:
    """The customer as the token will carry it. `referred` follows the referrer when not
    given; a token must never say one without the other, since a referrer reward needs
    someone to pay and a referrer on an unreferred shopper would be paid for nothing."""
    if "customer" not in body:
        raise invalid("customer", 'required: {"tier", "orders", "tags", "referred"}')
    try:
        customer = check_customer(body["customer"])
    except InputError as exc:
        raise invalid(exc.field, exc.message) from None
    given = body["customer"].get("referred") is not None
    if referrer is None and customer["referred"]:
        raise invalid("referrer", "a referred customer needs the referrer's id")
    if referrer is not None:
        if given and not customer["referred"]:
            raise invalid("customer.referred", "false, but a referrer is given")
        customer["referred"] = True
    return customer


@bp.post("")
@require("publish")
def post_customer_token() -> tuple[dict[str, Any], int, dict[str, str]]:
    """The merchant is the caller's: a token never names one, so it cannot sign for another.
    ---
    post:
      summary: A signed customer token a PoP verifies offline (docs/customer_tokens.md)
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [customer, subject]
              additionalProperties: false
              properties:
                customer:
                  type: object
                  additionalProperties: false
                  properties:
                    tier: {type: [string, "null"], maxLength: 64, default: ""}
                    orders: {type: [integer, "null"], minimum: 0, maximum: 9007199254740991,
                             default: 0}
                    tags:
                      type: [array, "null"]
                      maxItems: 20
                      items: {type: string, maxLength: 64}
                      default: []
                    referred:
                      type: [boolean, "null"]
                      description: Follows `referrer` when not given; never without one
                subject: {type: string, minLength: 1, maxLength: 200,
                          description: "The shop's opaque id of the shopper; only its SHA-256
                            goes in the token"}
                referrer: {type: [string, "null"], minLength: 1, maxLength: 200,
                           description: "The shop's opaque id of the referrer; only its
                             SHA-256 goes in the token"}
                ttl: {type: integer, minimum: 60, maximum: 86400, default: 900}
              anyOf:
                - description: With a referrer, the customer is referred
                  required: [referrer]
                  properties:
                    referrer: {type: string}
                    customer: {properties: {referred: {enum: [true, null]}}}
                - description: Without one, not
                  properties:
                    referrer: {type: "null"}
                    customer: {properties: {referred: {enum: [false, null]}}}
      responses:
        201:
          description: The token
          content:
            application/json:
              schema:
                type: object
                required: [token, expires_at]
                properties:
                  token: {type: string, maxLength: 8192}
                  expires_at: {type: string, format: date-time}
    """
    body = json_body(frozenset({"customer", "subject", "referrer", "ttl"}))
    if "subject" not in body:
        raise invalid("subject", "required: the shop's opaque id of the shopper")
    subject = _opaque_id("subject", body["subject"])
    referrer = None if body.get("referrer") is None else _opaque_id("referrer", body["referrer"])
    customer = _customer(body, referrer)
    ttl = body.get("ttl", DEFAULT_TTL)
    if not is_integer(ttl) or not MIN_TTL <= ttl <= MAX_TTL:
        raise invalid("ttl", f"expected a whole number of seconds from {MIN_TTL} to {MAX_TTL}")
    who = caller()
    issued = issue(session(), merchant_id=who.merchant_id, customer=customer, subject=subject,
                   referrer=referrer, ttl=ttl, actor_token_id=who.token_id)
    session().commit()
    return ({"token": issued.token, "expires_at": format_time(issued.expires_at)}, 201,
            {"Cache-Control": "no-store"})
