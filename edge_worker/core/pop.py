"""The PoP's HTTP API as one plain function, request → response (docs/pop_api.md).

Routing and every endpoint live here, in the portable core, so that the CPython host (WSGI
under gunicorn) and the Cloudflare worker serve the same API; a host only adapts its server's
request to `HttpRequest`, passes the answer back, and supplies the adapters below: the PoP's
identity, its Ed25519 signer, its clock, the release it runs (`ReleaseSource`) and its
durable receipt outbox (`Outbox`). Nothing a client sends about money or about its shopper
is trusted: prices come from the release, customer attributes from a signed customer token,
spent codes from the redemption snapshot, the time from the PoP's clock.

Standard library (and msgpack, through the release) only at import time. Customer tokens are
checked with `poprules.customer_token.verify_customer_token`, which imports PyNaCl when
called; a host without it passes its own `verify_token`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edge_worker.core import checkout, web
from edge_worker.core.engine import EngineError
from edge_worker.core.metrics import CONTENT_TYPE, Counter, Gauge, Histogram, Registry
from edge_worker.core.release import EvaluationError
from poprules import receipt
from poprules.customer_token import CustomerTokenError, verify_customer_token
from poprules.errors import InputError
from poprules.jsonio import load_object
from poprules.request import is_text

if TYPE_CHECKING:
    from edge_worker.core.redemptions import Redemptions
    from edge_worker.core.release import Release

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes; a host should refuse a longer Content-Length before reading it
CUSTOMER_HEADER = "X-Poprules-Customer"
ALLOWED_HEADERS = f"Content-Type, {CUSTOMER_HEADER}"
CORS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", ALLOWED_HEADERS)]
JSON_TYPE = "application/json"
JSON_HEADERS = (("Content-Type", JSON_TYPE), ("Cache-Control", "no-store"))
# Set by the PoP alone (docs/pop_api.md): a body holding one is refused, not overridden, so a
# client that thinks it chooses them learns that it does not.
POP_FIELDS = {
    "customer": "customer fields come only from a customer token (header "
                f"{CUSTOMER_HEADER} or body field customer_token)",
    "at": "the time is the PoP's clock",
    "spent_coupons": "spent codes come from the PoP's redemption snapshot",
    "pop": "the order's pop is the name this PoP enrolled with",
}

Signer = Callable[[bytes], bytes]
Clock = Callable[[], int]
TokenVerifier = Callable[[str, Mapping[str, str], int, int], dict[str, Any]]
Build = Callable[[int, str], tuple[bytes, bytes]]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # keys in lower case
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Live:
    """What the PoP serves right now; a host swaps the whole object, so a request that took
    it keeps one release and the snapshot read for that release."""

    release: Release
    number: int
    redemptions: Redemptions | None = None


class ReleaseSource(Protocol):
    def current(self) -> Live | None:
        """The live release, or None before the first one is loaded. Called once per
        request; must be cheap and thread-safe."""


class Outbox(Protocol):
    """The PoP's durable, chained receipt log (issue 6 item 3)."""

    def append(self, build: Build) -> tuple[bytes, bytes]:
        """Atomically: call `build(seq, prev)` with the next sequence number (1 first) and
        the digest of the previous body (receipt.GENESIS first), store the (body, signature)
        it returns durably, and return them. If `build` or the write raises, nothing is
        stored and the exception propagates. `build` is pure and may be called again."""

    def depth(self) -> int:
        """Receipts stored and not yet acknowledged by the control plane."""

    def find(self, receipt_id: str) -> bytes | None:
        """The body of a receipt this PoP issued (acknowledged or not), or None."""

    def refunded(self, receipt_id: str) -> set[int]:
        """The line indices of sale `receipt_id` that this PoP's refund receipts (kind
        "refund", refund_of = receipt_id) have already reversed: the union of their `lines`."""


class ApiError(Exception):
    def __init__(self, status: int, field: str | None, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message
        self.headers = headers or []


Handler = Callable[[HttpRequest], HttpResponse]


@dataclass(frozen=True)
class _Route:
    name: str  # the metrics label
    methods: dict[str, Handler]

    @property
    def allow(self) -> str:
        head = ["HEAD"] if "GET" in self.methods else []
        return ", ".join([*sorted(self.methods), *head, "OPTIONS"])


class PopApp:
    """The API; `handle` is thread-safe (the only state it changes is in the outbox and the
    metrics registry, and refunds, which check then append, are serialised)."""

    def __init__(self, *, merchant_id: int, pop_id: int, pop_name: str, signer: Signer,
                 clock: Clock, releases: ReleaseSource, outbox: Outbox,
                 registry: Registry | None = None,
                 random: Callable[[int], bytes] = secrets.token_bytes,
                 verify_token: TokenVerifier = verify_customer_token,
                 claim_page: str | None = None) -> None:
        self.merchant_id, self.pop_id, self.pop_name = merchant_id, pop_id, pop_name
        self._signer, self._clock, self._random = signer, clock, random
        self._releases, self._outbox, self._verify_token = releases, outbox, verify_token
        # Where a shopper redeems a claim token (the control plane's /claim page): the claim
        # code a checkout shows opens it with the token after `#`, which no server logs.
        self._claim_page = claim_page
        self._storefronts: dict[str, bytes] = {}  # the answer of /v1/storefront, by release
        # One PopApp per outbox: two refunds of one sale must not both pass the check.
        self._refunds = threading.Lock()
        self.registry = registry or Registry()
        self._requests = Counter(self.registry, "poprules_pop_requests_total",
                                 "HTTP requests answered, by route and status",
                                 ("route", "status"))
        self._seconds = Histogram(self.registry, "poprules_pop_request_seconds",
                                  "Time to answer a request, by route", ("route",))
        self._quotes = Counter(self.registry, "poprules_pop_quotes_total",
                               "Requests evaluated by the rule module (quote, validate, checkout)")
        self._errors = Counter(self.registry, "poprules_pop_errors_total",
                               "Answers with a 5xx status: the PoP, not the client, failed")
        Gauge(self.registry, "poprules_pop_release_number",
              "Number of the release served (0 before the first)", self._release_number)
        Gauge(self.registry, "poprules_pop_outbox_depth",
              "Receipts stored and not yet acknowledged by the control plane", outbox.depth)
        self._routes = {
            "/v1/quote": _Route("/v1/quote", {"POST": self._quote}),
            "/v1/coupons/validate": _Route("/v1/coupons/validate", {"POST": self._validate}),
            "/v1/checkout": _Route("/v1/checkout", {"POST": self._checkout}),
            "/v1/refunds": _Route("/v1/refunds", {"POST": self._refund}),
            "/v1/release": _Route("/v1/release", {"GET": self._release}),
            "/v1/storefront": _Route("/v1/storefront", {"GET": self._storefront}),
            "/v1/claims/qr": _Route("/v1/claims/qr", {"POST": self._claim_code}),
            "/sdk/poprules.js": _Route("/sdk/poprules.js", {"GET": self._asset(web.SCRIPT)}),
            "/demo": _Route("/demo", {"GET": self._asset(web.DEMO)}),
            "/healthz": _Route("/healthz", {"GET": self._health}),
            "/metrics": _Route("/metrics", {"GET": self._metrics}),
        }

    def handle(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        route = self._routes.get(request.path)
        name = route.name if route else "unmatched"
        try:
            response = self._dispatch(route, request)
        except ApiError as exc:
            response = _error(exc.status, exc.field, exc.message, exc.headers)
        except InputError as exc:
            response = _error(422, exc.field, exc.message)
        except (EvaluationError, EngineError) as exc:
            log.error("the rule module could not answer: %s", exc)
            response = _error(503, None, "the rule module could not answer this request")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _error(500, None, "internal error")
        self._requests.inc(name, str(response.status))
        self._seconds.observe(time.perf_counter() - started, name)
        if response.status >= 500:
            self._errors.inc()
        return HttpResponse(response.status, [*response.headers, *CORS], response.body)

    def _dispatch(self, route: _Route | None, request: HttpRequest) -> HttpResponse:
        if route is None:
            raise ApiError(404, "path", f"no endpoint at {request.path}")
        method = request.method.upper()
        if method == "OPTIONS":  # a browser's CORS preflight
            return HttpResponse(204, [("Access-Control-Allow-Methods", route.allow),
                                      ("Access-Control-Max-Age", "86400")], b"")
        # HEAD is GET without the body, which the host leaves out.
        handler = route.methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            raise ApiError(405, "method", f"{route.name} answers {route.allow}",
                           [("Allow", route.allow)])
        if len(request.body) > MAX_BODY:
            raise ApiError(413, "body", f"the body is over {MAX_BODY} bytes")
        return handler(request)

    # --- adapters' state ---------------------------------------------------------------

    def _live(self) -> Live:
        live = self._releases.current()
        if live is None:
            raise ApiError(503, None, "this PoP has no release yet: it has not pulled one "
                           "from the control plane")
        return live

    def _release_number(self) -> float:
        live = self._releases.current()
        return 0 if live is None else live.number

    def _customer(self, request: HttpRequest, data: dict[str, Any],
                  live: Live) -> dict[str, Any] | None:
        """The verified payload of the shopper's customer token, or None for an anonymous
        shopper. Removes `customer_token` from `data`."""
        in_body = data.pop("customer_token", None)
        in_header = request.headers.get(CUSTOMER_HEADER.lower())
        if in_body is not None and in_header is not None:
            raise InputError("customer_token", f"give the customer token in the "
                             f"{CUSTOMER_HEADER} header or the body, not both")
        token = in_header if in_header is not None else in_body
        if token is None:
            return None
        if not is_text(token):
            raise InputError("customer_token", "expected a string")
        keyring = {key["key_id"]: key["public_key"]
                   for key in live.release.bundle.manifest.get("customer_keys", [])}
        try:
            return self._verify_token(token, keyring, self._clock(), self.merchant_id)
        except CustomerTokenError as exc:
            raise InputError("customer_token", f"{exc.reason}: {exc.message}") from None
        except ValueError:
            log.exception("the release's customer keyring is unusable")
            raise ApiError(503, None, "this PoP cannot check customer tokens: its release's "
                           "keyring is unusable") from None

    def _request_fields(self, request: HttpRequest) -> dict[str, Any]:
        data = load_object(request.body, "request")
        for name, why in POP_FIELDS.items():
            if name in data:
                raise InputError(name, f"not accepted at a PoP: {why}")
        return data

    def _evaluate(self, live: Live, fields: dict[str, Any],
                  token: dict[str, Any] | None) -> checkout.Evaluation:
        # `order.pop` is this PoP's name, whatever the client might say: rules may pay by it.
        evaluation = checkout.evaluate(live.release, live.redemptions,
                                       {**fields, "pop": self.pop_name}, token=token,
                                       at=self._clock())
        self._quotes.inc()
        return evaluation

    def _signed(self, live: Live, evaluation: checkout.Evaluation) -> dict[str, Any]:
        return checkout.signed_quote(evaluation, live.release, live.number, self.pop_id,
                                     self._signer)

    # --- endpoints ---------------------------------------------------------------------

    def _quote(self, request: HttpRequest) -> HttpResponse:
        live = self._live()
        fields = self._request_fields(request)
        token = self._customer(request, fields, live)
        body = checkout.signed_quote_json(self._evaluate(live, fields, token), live.release,
                                          live.number, self.pop_id, self._signer)
        return HttpResponse(200, list(JSON_HEADERS), body)

    def _validate(self, request: HttpRequest) -> HttpResponse:
        live = self._live()
        data = load_object(request.body, "body")
        allowed = ("code", "customer_token", "lines", "channel", "fulfillment", "prefer")
        for key in data:
            if key not in allowed:
                raise InputError(key, "unknown field; expected one of: " + ", ".join(allowed))
        code = data.pop("code", None)
        if not is_text(code):
            raise InputError("code", "expected the coupon code as a string")
        token = self._customer(request, data, live)
        data.setdefault("lines", [])
        quote = self._evaluate(live, {**data, "coupons": [code]}, token).quote
        report = dict(quote["coupons"][0])
        rule = report.get("rule")
        if report["status"] == "valid":
            # Which rule used the code: one that needs a coupon without it.
            without = self._evaluate(live, data, token).quote["rules"]
            rule = next((mine["rule"] for mine, other in zip(quote["rules"], without, strict=True)
                         if other["status"] == "coupon_required"
                         and mine["status"] in ("applied", "capped")), None)
            report["rule"] = rule
        if rule is not None:
            found = next(r for r in quote["rules"] if r["rule"] == rule)
            report["report"] = found
            if "amount" in found:
                report["gives"] = found["amount"]
            nudge = next((n for n in quote["nudges"] if n["rule"] == rule), None)
            if nudge is not None:
                report["nudge"] = nudge
        return _json(200, report)

    def _checkout(self, request: HttpRequest) -> HttpResponse:
        live = self._live()
        fields = self._request_fields(request)
        claim = fields.pop("claim", None)
        if claim is not None and not isinstance(claim, bool):
            raise InputError("claim", "expected true or false")
        token = self._customer(request, fields, live)
        if claim and token is not None:
            raise InputError("claim", "a shopper with a customer token gets the cashback in "
                             "their wallet; claim tokens are for anonymous shoppers")
        evaluation = self._evaluate(live, fields, token)
        answer = self._signed(live, evaluation)
        secret = checkout.new_claim_secret(self._random) if claim else None

        def build(seq: int, prev: str) -> tuple[bytes, bytes]:
            claimed = None
            if secret is not None:
                claimed = checkout.claim_hash(
                    checkout.claim_token(receipt.receipt_id(self.pop_id, seq), secret))
            body = checkout.sale_body(evaluation, merchant_id=self.merchant_id,
                                      pop_id=self.pop_id, seq=seq, prev=prev,
                                      release_number=live.number,
                                      release_hash=live.release.hash, claim=claimed)
            return body, self._signer(receipt.statement(body))

        stored = self._append(build)
        out: dict[str, Any] = {"receipt": stored, "quote": answer}
        if secret is not None:
            out["claim_token"] = checkout.claim_token(stored["id"], secret)
        return _json(201, out)

    def _refund(self, request: HttpRequest) -> HttpResponse:
        data = load_object(request.body, "body")
        for key in data:
            if key not in ("receipt", "lines"):
                raise InputError(key, "unknown field; expected receipt and lines")
        receipt_id = data.get("receipt")
        if not is_text(receipt_id) or not 1 <= len(receipt_id) <= 64:
            raise InputError("receipt", "expected a receipt id such as \"7-42\"")
        with self._refunds:
            found = self._outbox.find(receipt_id)
            if found is None:
                raise ApiError(404, "receipt", f"this PoP issued no receipt {receipt_id}")
            original = receipt.decode(found)
            if original["kind"] != "sale":
                raise InputError("receipt", f"{receipt_id} is a {original['kind']} receipt; "
                                 "only a sale can be refunded")
            lines = checkout.refund_lines(original, data.get("lines"),
                                          self._outbox.refunded(receipt_id))
            at = self._clock()

            def build(seq: int, prev: str) -> tuple[bytes, bytes]:
                body = checkout.refund_body(original, lines, merchant_id=self.merchant_id,
                                            pop_id=self.pop_id, seq=seq, prev=prev, at=at)
                return body, self._signer(receipt.statement(body))

            return _json(201, {"receipt": self._append(build)})

    def _append(self, build: Build) -> dict[str, Any]:
        """Store a receipt before answering; a failure answers 503 and sells nothing."""
        try:
            body, signature = self._outbox.append(build)
        except Exception:
            log.exception("the outbox refused a receipt")
            raise ApiError(503, None, "the receipt could not be stored, so nothing was "
                           "committed; try again") from None
        fields = json.loads(body)
        return {"id": fields["id"], "seq": fields["seq"], "body": fields,
                "signature": signature.hex()}

    def _release(self, request: HttpRequest) -> HttpResponse:
        live = self._releases.current()
        release = None if live is None else {"number": live.number, "hash": live.release.hash,
                                             "program": live.release.program}
        snapshot = None if live is None or live.redemptions is None else live.redemptions.version
        return _json(200, {"pop": self.pop_id, "merchant": self.merchant_id,
                           "release": release, "snapshot": snapshot})

    def _storefront(self, request: HttpRequest) -> HttpResponse:
        live = self._live()
        body = self._storefronts.get(live.release.hash)
        if body is None:
            front = live.release.bundle.storefront()
            manifest = live.release.bundle.manifest
            body = json.dumps({
                "program": live.release.program, "currency": manifest["currency"],
                "release": {"number": live.number, "hash": live.release.hash},
                "items": [{"sku": sku, "title": title, "price": price}
                          for sku, title, price in front["items"]],
                "rules": [{"id": rule, "title": title, "kind": kind, "lane": lane}
                          for rule, title, kind, lane in front["rules"]],
            }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            self._storefronts = {live.release.hash: body}  # the release served, only
        return HttpResponse(200, [("Content-Type", JSON_TYPE),
                                  ("Cache-Control", "public, max-age=60")], body)

    def _claim_code(self, request: HttpRequest) -> HttpResponse:
        """The claim token as a QR code (SVG) of the claim page's address, for the checkout
        to show: drawn here so a page needs no QR library."""
        data = load_object(request.body, "body")
        for key in data:
            if key != "claim_token":
                raise InputError(key, "unknown field; expected claim_token")
        token = data.get("claim_token")
        if not is_text(token) or not checkout.is_claim_token(token):
            raise InputError("claim_token", "expected a claim token, <receipt id>.<22 "
                             "base64url characters>")
        url = token if self._claim_page is None else f"{self._claim_page}#{token}"
        return _json(200, {"url": url, "svg": claim_svg(url)})

    def _asset(self, name: str) -> Handler:
        def serve(request: HttpRequest) -> HttpResponse:
            return HttpResponse(200, [("Content-Type", web.TYPES[name]),
                                      ("Cache-Control", "public, max-age=300")],
                                web.asset(name))
        return serve

    def _health(self, request: HttpRequest) -> HttpResponse:
        return _json(200, {"status": "ok", "release": self._live().number})

    def _metrics(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [("Content-Type", CONTENT_TYPE)],
                            self.registry.render().encode("utf-8"))


def claim_svg(text: str) -> str:
    """A QR code of `text` as a standalone SVG document (with its namespace, so a page can
    show it as an image); segno is imported on first use, so a PoP that never shows one
    never loads it."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="svg", xmldecl=False, svgns=True,
                                                  scale=4, border=2)
    return out.getvalue().decode("ascii")


def _json(status: int, value: Any) -> HttpResponse:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HttpResponse(status, list(JSON_HEADERS), body)


def _error(status: int, field: str | None, message: str,
           headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    response = _json(status, {"error": {"field": field, "message": message}})
    return HttpResponse(status, [*response.headers, *(headers or [])], response.body)
