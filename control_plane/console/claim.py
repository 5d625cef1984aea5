"""The shopper's claim page, /claim: where the QR code a checkout showed leads.

The code is `<control plane>/claim#<claim token>`: the token travels after `#`, which
browsers never send, so it reaches no access log. A few lines of script copy it into the
form; without script the shopper pastes it. The shopper gives the id their shop account has
(the `subject` a shop's back end would send to POST /v1/claims), and the claim is that
endpoint's: the token's receipt names its PoP, the PoP its merchant, and `ledger.claim` moves
the cashback once, under the merchant's throttles. No token acts here (the audit trail shows
the claim as the shopper's); nothing about the shopper is kept but their customer hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import redirect, request, url_for
from flask import session as cookie_session
from sqlalchemy import select
from werkzeug.wrappers import Response

from control_plane import ledger
from control_plane.auth import public
from control_plane.console import programs
from control_plane.console.web import claim, page
from control_plane.context import control_plane, session
from control_plane.coupon_key import customer_hash, customer_key
from control_plane.errors import ApiError
from control_plane.storage.models import Pop
from control_plane.wire import MAX_ID
from edge_worker.core.checkout import is_claim_token
from poprules.customer_token import check_id
from poprules.errors import InputError

MESSAGES = {
    404: ("We cannot find this purchase yet",
          ("No purchase we know of carries this code. If you paid just now, the shop may not "
           "have sent it to us yet: please try again in a few hours. If you typed the code, "
           "check it.")),
    409: ("This code was already used",
          ("The cashback of this purchase went to the account that claimed it first. A code "
           "works once.")),
    429: ("Too many claims right now",
          ("This account, code or device has claimed as much as the shop allows for now. "
           "Nothing was moved; please try again later.")),
}


RESULT = "claimed"  # the session's key for the result page, read once


def _token(form: dict[str, str]) -> str:
    """The code from the link (copied by the page's script) or as pasted; a pasted link
    gives what follows its `#`."""
    text = (form.get("fragment") or form.get("claim_token") or "").strip()
    return text.rpartition("#")[2].strip()


def _merchant_of(token: str) -> int | None:
    """The merchant of the PoP whose receipt the token names (`<pop>-<seq>.<secret>`)."""
    pop_id = int(token.partition("-")[0])
    if pop_id > MAX_ID:
        return None
    return session().scalar(select(Pop.merchant_id).where(Pop.id == pop_id))


def _entries(claimed: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Each moved amount and when it can be spent."""
    out = []
    for entry in claimed["entries"]:
        vests = None if entry["vests_at"] is None else datetime.fromisoformat(entry["vests_at"])
        lapses = None if entry["lapses_at"] is None \
            else datetime.fromisoformat(entry["lapses_at"])
        out.append({"amount": entry["amount"], "vests_at": vests, "lapses_at": lapses,
                    "now": vests is None or vests <= now})
    return out


@claim.route("/claim", methods=["GET", "POST"])
@public
def claim_page() -> Response:
    """Public: holding the claim token is what entitles the shopper."""
    if request.method == "GET":
        return page("console/claim.html")
    form = request.form.to_dict()
    token, subject = _token(form), form.get("subject", "")
    shown = {"token": token, "subject": subject}
    if not token:
        return page("console/claim.html", 422, field="claim_token", **shown,
                    error="Scan the QR code again, or type the code printed under it.")
    if not is_claim_token(token):
        return page("console/claim.html", 422, field="claim_token", **shown,
                    error="This is not a claim code. A code looks like 12-345.Ab3dE… : the "
                          "part of the link after #.")
    try:
        subject = check_id("subject", subject.strip())
    except InputError:
        return page("console/claim.html", 422, field="subject", **shown,
                    error="Enter the id of your account with the shop (1 to 200 characters).")
    merchant_id = _merchant_of(token)
    db = session()
    try:
        if merchant_id is None:
            raise ApiError(404, "claim_token", "no such PoP")
        customer = customer_hash(customer_key(control_plane().settings.key_dir, merchant_id),
                                 subject)
        now = ledger.now()
        claimed = ledger.claim(db, merchant_id, token, customer, None, now,
                               actor_token_id=None)
    except ledger.ClaimHeld:
        db.commit()  # the claim.refused event, as the API keeps it
        status = 429
    except ApiError as exc:
        db.rollback()
        status = exc.status
    else:
        db.commit()
        cookie_session[RESULT] = {"merchant": merchant_id, "subject": subject,
                                  "amount": claimed["amount"], "entries": claimed["entries"]}
        return redirect(url_for("claim.claimed"), 303)
    title, message = MESSAGES.get(status, ("That did not work", "Please try again later."))
    return page("console/claim.html", status, field="claim_token", **shown, title=title,
                error=message)


@claim.get("/claim/done")
@public
def claimed() -> Response:
    """The claim's result, after a redirect: the address differs from the claim link's, so
    opening another claim link in the same tab loads the form (a link that differs only after
    `#` would not), and reloading does not post the claim again."""
    result = cookie_session.pop(RESULT, None)
    if not isinstance(result, dict):
        return redirect(url_for("claim.claim_page"), 303)
    return page("console/claimed.html", amount=result["amount"], subject=result["subject"],
                entries=_entries(result, ledger.now()),
                currency=programs.currency(session(), result["merchant"]))
