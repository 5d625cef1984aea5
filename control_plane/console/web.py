"""What every console and claim page shares: the two blueprints, the session's secret key,
the CSRF check, security headers, HTML error pages and how figures are written.

The session's secret key is derived from the control plane's own secret (`coupons.secret` in
the key directory, which every worker and host already shares, is made once and never
rotates) under a label of its own, so several gunicorn workers sign and read the same
cookies with no new file to distribute. An operator who wants another key sets SECRET_KEY in
the app's config; revoking a token ends its sessions at once, since every request checks it.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, g, render_template, request, session
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from control_plane.context import EXTENSION, ControlPlane
from control_plane.coupon_key import session_key
from control_plane.errors import ApiError
from poprules.currency import format_amount

TEMPLATES = "templates"
STATIC = Path(__file__).resolve().parent / "static"
CSRF_FIELD = "csrf"

console = Blueprint("console", __name__, url_prefix="/console", template_folder=TEMPLATES)
claim = Blueprint("claim", __name__, template_folder=TEMPLATES)


def _configure(state: BlueprintSetupState) -> None:
    """Give the app what a cookie session needs, unless the operator configured it."""
    app = state.app
    plane: ControlPlane = app.extensions[EXTENSION]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = session_key(plane.settings.key_dir)
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # A pasted program or catalog may be as large as the API takes one (Flask's default
    # caps a form field at 500 kB).
    app.config["MAX_FORM_MEMORY_SIZE"] = plane.settings.max_content_length


console.record_once(_configure)


# -- CSRF -------------------------------------------------------------------------------------


def csrf_token() -> str:
    """The session's CSRF token, made on first use; every form posts it back."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def _check_csrf() -> Response | None:
    """Refuse a POST whose form does not carry the session's token: it came from another
    site, or from a page older than the session."""
    if request.method != "POST":
        return None
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    return page("console/error.html", 400, title="This form has expired",
                message="The form was not sent from a page of this site, or your session "
                        "changed since it was shown. Go back, reload the page and try again.")


# -- answers ----------------------------------------------------------------------------------


def script_nonce() -> str:
    """A nonce for the one inline script a page may carry (the claim page's)."""
    if "script_nonce" not in g:
        g.script_nonce = secrets.token_urlsafe(16)
    nonce: str = g.script_nonce
    return nonce


def _headers(response: Response) -> Response:
    """Pages that hold a merchant's data and a form token are neither cached nor framed,
    and run no script but the page's own."""
    scripts = f"'nonce-{g.script_nonce}'" if "script_nonce" in g else "'none'"
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'none'; style-src 'self'; img-src 'self' data:; script-src {scripts}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.vary.add("Cookie")
    return response


def page(template: str, status: int = 200, **context: Any) -> Response:
    response = current_app.make_response(render_template(template, **context))
    response.status_code = status
    return response


def _api_error(exc: ApiError) -> Response:
    return page("console/error.html", exc.status, title="That did not work",
                message=exc.message, field=exc.field)


def _http_error(exc: HTTPException) -> Response:
    titles = {404: "Page not found", 405: "Not available here",
              413: "That upload is too large"}
    code = exc.code or 500
    return page("console/error.html", code, title=titles.get(code, exc.name),
                message=exc.description or exc.name)


def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unexpected error in a page", exc_info=exc)
    return page("console/error.html", 500, title="Something went wrong",
                message="The request failed on our side; the operator's log has the details. "
                        "Nothing was changed.")


# -- how figures are written ------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def short_hash(release_hash: str) -> str:
    """`sha256:0a1b2c3d4e5f…`: enough to tell releases apart at a glance."""
    return release_hash[: len("sha256:") + 12] + "…"


# Symbols only where one is unambiguous; other currencies are written with their code.
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩", "ILS": "₪",
           "NGN": "₦", "UAH": "₴", "TRY": "₺", "VND": "₫", "PHP": "₱"}


def money(minor: int | None, currency: tuple[str, int] | None) -> str:
    """`€3.98`, `-€0.32`, `12.50 CHF`: in the currency's decimals when the currency is known,
    else in minor units."""
    if minor is None:
        return "—"
    if currency is None:
        return f"{minor} (minor units)"
    code, places = currency
    figure = format_amount(abs(minor), places)
    sign = "-" if minor < 0 else ""
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{figure}" if symbol else f"{sign}{figure} {code}"


for _bp in (console, claim):
    _bp.before_request(_check_csrf)
    _bp.after_request(_headers)
    _bp.register_error_handler(ApiError, _api_error)
    _bp.register_error_handler(HTTPException, _http_error)
    _bp.register_error_handler(Exception, _unexpected)

# The pages' templates live in one folder and share these (the app has no other templates).
console.add_app_template_global(csrf_token, "csrf_token")
console.add_app_template_global(script_nonce, "script_nonce")
console.add_app_template_global(money, "money")
console.add_app_template_filter(when, "when")
console.add_app_template_filter(short_hash, "short_hash")
