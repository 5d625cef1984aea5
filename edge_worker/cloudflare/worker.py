"""The Cloudflare Worker PoP's logic, apart from the JavaScript glue in `entry` (docs/cloudflare.md).

Everything here imports under CPython as well as Pyodide, so the tests run it with fakes of the
JavaScript side; `entry` only converts between JavaScript objects and these functions.

- **The release** is part of the Worker version: `poprules build --target cloudflare` writes
  its bundle, signature and the PoP's pinned keyring into a data module, and the rule module
  as `rules.wasm` (Workers refuse to compile WebAssembly at run time). `load_release` checks
  the signature and the bundle when the Worker's module is imported, which happens once, in
  the memory snapshot of a new version, so a tampered build never serves; the compiled module
  is attached on the first request (`DeferredEngine`), the first moment JavaScript modules can
  be imported.
- **Redemption state** (`Snapshots`, the Worker's `ReleaseSource`): the control plane's
  signed redemption snapshot, fetched by the isolate itself (GET /v1/pops/<id>/redemptions,
  If-None-Match), at most once per `SNAPSHOT_TTL_MS` and waiting at most `SNAPSHOT_WAIT_MS`,
  checked as the self-hosted PoP checks it (`edge_worker.host.sync`): a pinned key's
  signature, this merchant, never a lower version. It lives in the isolate's memory; when the
  control plane is away or slow, the last good snapshot (or none) keeps serving.
- **Routing**: quotes, validations, /v1/release, /healthz and /metrics run in the isolate that
  took the request, at the edge. Checkouts and refunds are forwarded to one Durable Object per
  PoP (`CHAIN_PATHS`), the receipt chain's single writer, which runs the same `PopApp` with a
  `ChainOutbox` over its storage. The control plane wants one chain per enrolled PoP (seq from
  1, each receipt naming the digest of the one before); a Worker runs in many isolates at once,
  and only a Durable Object is one place that numbers every receipt.
- **Receipts** leave the Durable Object through a Cloudflare Queue once stored (`undelivered`,
  `delivered`); the queue's consumer posts batches to the control plane (`upload_body`,
  `acknowledged`). Both legs are at-least-once and the ingestion is idempotent, so a
  duplicate books nothing twice.
- **Signatures**: PyNaCl has no Pyodide build; the PoP signs with WebCrypto Ed25519, which is
  asynchronous, while the core's signer is a plain function. `entry` bridges the two with
  Pyodide's `run_sync` (JavaScript Promise Integration), which the Workers runtime provides
  inside handlers and which `import_from_javascript` needs anyway. Customer tokens are checked
  the same way (`token_verifier`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from edge_worker.cloudflare import ed25519
from edge_worker.core.engine import EngineError, Runner
from edge_worker.core.pop import (
    CORS,
    JSON_TYPE,
    MAX_BODY,
    Build,
    Clock,
    HttpRequest,
    HttpResponse,
    Live,
    Outbox,
    PopApp,
    ReleaseSource,
    Signer,
    TokenVerifier,
)
from edge_worker.core.redemptions import Redemptions, SnapshotError
from edge_worker.core.release import Release
from poprules import customer_token, receipt
from poprules.bundle import BundleError, release_statement

RELEASE_MODULE = "poprules_release"  # the data module `build` writes next to the entry
CHAIN_PATHS = frozenset({"/v1/checkout", "/v1/refunds"})
EDGE, CHAIN = "edge", "chain"
# A Queue message holds at most 128 KB; a receipt is refused before it could not leave.
MAX_RECEIPT = 120_000
# PKCS #8 for an Ed25519 private key (RFC 8410) is this prefix and the 32-byte seed: the form
# WebCrypto's importKey takes.
PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
MAX_RETRY_DELAY = 3600  # seconds between two deliveries of a receipt the control plane refused
SNAPSHOT_CONTEXT = b"poprules-redemptions/1\n"  # control_plane.signing.SNAPSHOT_CONTEXT
SNAPSHOT_TTL_MS = 30_000  # an isolate asks the control plane for the snapshot at most this often
SNAPSHOT_WAIT_MS = 1_000  # and a request waits at most this long for the answer
# The requests whose answer depends on the snapshot: only these wait for it.
SNAPSHOT_PATHS = frozenset({"/v1/quote", "/v1/coupons/validate", "/v1/checkout", "/v1/release"})

log = logging.getLogger("poprules.pop")


class ReleaseRefused(RuntimeError):
    """The Worker's own release does not check out: the version must not serve."""


# --- the release ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """What the build ships in the Worker's data module: the PoP's identity, the release and
    how it was signed, and the keyring pinned at enrollment."""

    merchant_id: int
    pop_id: int
    pop_name: str
    number: int
    hash: str
    key_id: str
    signature: str
    keyring: Mapping[str, str]
    bundle: bytes

    @classmethod
    def of(cls, module: Any) -> Built:
        """Read the data module (`RELEASE_MODULE`)."""
        return cls(int(module.MERCHANT_ID), int(module.POP_ID), str(module.POP_NAME),
                   int(module.NUMBER), str(module.HASH), str(module.KEY_ID),
                   str(module.SIGNATURE), dict(module.KEYRING),
                   base64.b64decode(module.BUNDLE, validate=True))

    def module_source(self) -> str:
        """The data module: Python literals, so the Worker reads it at import, into the
        memory snapshot, without touching the file system."""
        lines = [
            (f'"""Release {self.number} of merchant {self.merchant_id} for PoP {self.pop_id}: '
             'written by `poprules build --target cloudflare`."""'),
            f"MERCHANT_ID = {self.merchant_id!r}",
            f"POP_ID = {self.pop_id!r}",
            f"POP_NAME = {self.pop_name!r}",
            f"NUMBER = {self.number!r}",
            f"HASH = {self.hash!r}",
            f"KEY_ID = {self.key_id!r}",
            f"SIGNATURE = {self.signature!r}",
            f"KEYRING = {dict(sorted(self.keyring.items()))!r}",
            f"BUNDLE = {base64.b64encode(self.bundle).decode('ascii')!r}",
        ]
        return "\n".join(lines) + "\n"


def load_release(built: Built, make_runner: Callable[[], Runner]) -> Live:
    """The release the Worker serves, once its signature by a pinned key, its hash and its
    parts check out; `make_runner` is called on the first evaluation."""
    public = built.keyring.get(built.key_id)
    if public is None:
        raise ReleaseRefused(f"the release is signed by key {built.key_id!r}, which is not in "
                             "the pinned keyring")
    try:
        statement = release_statement(built.merchant_id, built.number, built.hash)
        good = ed25519.verify(bytes.fromhex(public), statement, bytes.fromhex(built.signature))
    except ValueError as exc:
        raise ReleaseRefused(f"the release's signature cannot be checked: {exc}") from None
    if not good:
        raise ReleaseRefused(f"the signature of release {built.number} does not verify with "
                             f"key {built.key_id}")
    try:
        release = Release.load(built.bundle, DeferredEngine(make_runner))
    except BundleError as exc:
        raise ReleaseRefused(f"release {built.number}: {exc}") from None
    if release.hash != built.hash:
        raise ReleaseRefused(f"the bundle is release {release.hash}; the signature names "
                             f"{built.hash}")
    return Live(release=release, number=built.number)


class DeferredEngine:
    """An `Engine` for a module compiled by the Workers runtime (`rules.wasm`, which the build
    wrote from these very bundle bytes): the bytes are not compiled again, and the runner is
    made when it is first needed."""

    def __init__(self, make_runner: Callable[[], Runner]) -> None:
        self._make_runner = make_runner

    def load(self, module: bytes, sha256: str | None = None) -> DeferredRunner:
        return DeferredRunner(self._make_runner)


class DeferredRunner:
    """A `Runner` made on the first call; a failure to make it is the module's, so the core
    answers 503, and the next request tries again."""

    def __init__(self, make: Callable[[], Runner]) -> None:
        self._make = make
        self._runner: Runner | None = None

    def _get(self) -> Runner:
        if self._runner is None:
            try:
                self._runner = self._make()
            except EngineError:
                raise
            except Exception as exc:
                raise EngineError(f"the rule module could not be loaded: {exc}") from exc
        return self._runner

    def run(self, words: Sequence[int], read: int = 0) -> tuple[int, Sequence[int]]:
        return self._get().run(words, read)

    def read(self, start: int, count: int) -> Sequence[int]:
        return self._get().read(start, count)


# --- signatures ------------------------------------------------------------------------------

SignatureCheck = Callable[[str, bytes, bytes], bool]  # (public key hex, message, signature)


def token_verifier(check: SignatureCheck) -> TokenVerifier:
    """`poprules.customer_token.verify_customer_token` with the Ed25519 check supplied by the
    host (WebCrypto in the Worker): same parsing, same order of checks, same refusals."""

    def verify(token: str, keyring: Mapping[str, str], now: int,
               merchant_id: int) -> dict[str, Any]:
        payload_bytes, key_id, signature = customer_token._split(token)
        public = keyring.get(key_id)
        if public is None:
            raise customer_token.CustomerTokenError(
                customer_token.UNKNOWN_KEY, f"the key {key_id} is not in this PoP's keyring")
        if not check(public, customer_token.CONTEXT + payload_bytes, signature):
            raise customer_token.CustomerTokenError(
                customer_token.BAD_SIGNATURE,
                f"the signature does not match the payload under key {key_id}")
        payload = customer_token._payload(payload_bytes)
        if payload["merchant"] != merchant_id:
            raise customer_token.CustomerTokenError(
                customer_token.WRONG_MERCHANT,
                f"the token is for merchant {payload['merchant']}, not {merchant_id}")
        if now >= payload["exp"]:
            raise customer_token.CustomerTokenError(
                customer_token.EXPIRED, f"the token expired at {payload['exp']} (now {now})")
        return payload

    return verify


def seed_of(secret: str) -> bytes:
    """The PoP's Ed25519 seed from the Worker secret POP_PRIVATE_KEY: the 32 bytes of the
    enrolled state's `pop.key`, as 64 hex digits."""
    text = secret.strip()
    if len(text) != 64:
        raise ValueError("POP_PRIVATE_KEY must be the PoP's 32-byte Ed25519 seed (pop.key) "
                         "as 64 hex digits")
    return bytes.fromhex(text)


def pkcs8_ed25519(seed: bytes) -> bytes:
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return PKCS8_ED25519 + seed


# --- the redemption snapshot -------------------------------------------------------------------


class Unreachable(ConnectionError):
    """The control plane did not answer in time: network, TLS, the wait's limit, a 5xx."""


class SnapshotRefused(ValueError):
    """A snapshot the Worker will not use; the message says why."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


# GET (url, headers) -> the answer, body read; raises Unreachable, the wait's limit included.
Get = Callable[[str, Mapping[str, str]], Awaitable[Answer]]


def needs_snapshot(path: str, method: str) -> bool:
    """Whether a request's answer depends on the redemption snapshot, so the isolate's copy is
    refreshed first (once its time to live is over). A preflight never waits."""
    return path in SNAPSHOT_PATHS and method.upper() != "OPTIONS"


@dataclass(frozen=True)
class _Held:
    version: int
    body: bytes

    @property
    def etag(self) -> str:
        """The control plane's ETag of these bytes: the digest it publishes."""
        return f'"sha256:{hashlib.sha256(self.body).hexdigest()}"'


class Snapshots:
    """The Worker's `ReleaseSource`: the release of this Worker version (a new release is a new
    version) with the redemption snapshot read for it, held in the isolate's memory.

    Workers keep no process between requests to poll from, so the requests that need the
    snapshot refresh it (`refresh`, `needs_snapshot`): at most once per time to live per
    isolate, each wait capped by the host (`entry` aborts the fetch after `SNAPSHOT_WAIT_MS`).
    A snapshot is taken exactly when the self-hosted PoP takes it (`edge_worker.host.sync`):
    signed by a key pinned at enrollment, over the snapshot context and the body; this
    merchant's; not a lower version than the one held, nor the same version with other bytes;
    readable for this release. Anything else, and any outage, leaves the last good snapshot
    (or none) serving. The Durable Object that writes receipts runs the same code, so a
    receipt names the snapshot version and spent hashes the checkout was quoted with."""

    def __init__(self, built: Built, live: Live, check: SignatureCheck, *,
                 ttl_ms: int = SNAPSHOT_TTL_MS) -> None:
        self._built = built
        self._live = live
        self._check = check
        self._ttl_ms = ttl_ms
        self._held: _Held | None = None
        self._next_ms = float("-inf")  # when the control plane may be asked again
        self.problem: str | None = None  # why the latest answer was not taken, if it was not

    def current(self) -> Live:
        return self._live

    async def refresh(self, get: Get, control_plane: str, secret: str, now_ms: float) -> None:
        """Ask the control plane for a newer snapshot when the time to live is over. Never
        raises: what fails is logged and kept in `problem`, and what is held keeps serving.
        The next attempt is due a time to live after this one began, whatever its outcome,
        so neither a slow nor a failing control plane is waited for more than once per TTL,
        and requests that come meanwhile do not wait at all."""
        if now_ms < self._next_ms:
            return
        self._next_ms = now_ms + self._ttl_ms
        url = f"{control_plane.rstrip('/')}/v1/pops/{self._built.pop_id}/redemptions"
        headers = {"Authorization": f"Bearer {secret}"}
        if self._held is not None:
            headers["If-None-Match"] = self._held.etag
        try:
            self.take(await get(url, headers))
        except (Unreachable, SnapshotRefused) as exc:
            self.problem = str(exc)
            log.warning("redemption snapshot: %s", exc)
        except Exception as exc:  # a quote must not fail for want of a newer snapshot
            self.problem = f"{type(exc).__name__}: {exc}"
            log.exception("redemption snapshot: the refresh failed")
        else:
            self.problem = None

    def take(self, answer: Answer) -> None:
        """Take the control plane's answer to GET /v1/pops/<id>/redemptions, or raise."""
        if answer.status >= 500:
            raise Unreachable(f"GET redemptions: {answer.status}")
        if answer.status in (304, 404):  # unchanged; no snapshot yet (nothing spent)
            return
        if answer.status != 200:
            raise SnapshotRefused(f"GET redemptions: {answer.status} {answer.body[:200]!r}")
        try:
            key_id = answer.headers["x-poprules-key-id"]
            signature = answer.headers["x-poprules-signature"]
        except KeyError as exc:
            raise SnapshotRefused(f"the snapshot answer lacks its signature headers ({exc})"
                                  ) from None
        self._verify(key_id, signature, answer.body)
        try:
            document = json.loads(answer.body)
            version, merchant = document["version"], document["merchant"]
        except (ValueError, TypeError, KeyError) as exc:
            raise SnapshotRefused(f"not a redemption snapshot: {exc}") from None
        if type(version) is not int or merchant != self._built.merchant_id:
            raise SnapshotRefused(f"the snapshot is merchant {merchant}'s version {version!r}")
        held = self._held
        if held is not None:
            if version < held.version:
                raise SnapshotRefused(f"snapshot version {version} is older than version "
                                      f"{held.version}: a replay")
            if version == held.version:
                if answer.body != held.body:
                    raise SnapshotRefused(f"snapshot version {version} comes with other "
                                          "content")
                return
        try:
            redemptions = Redemptions.from_snapshot(answer.body, release=self._live.release,
                                                    merchant=self._built.merchant_id)
        except SnapshotError as exc:
            raise SnapshotRefused(f"snapshot version {version}: {exc}") from None
        self._held = _Held(version, answer.body)
        self._live = replace(self._live, redemptions=redemptions)
        log.info("redemption snapshot version %d", version)

    def _verify(self, key_id: str, signature: str, body: bytes) -> None:
        public = self._built.keyring.get(key_id)
        if public is None:
            raise SnapshotRefused(f"the redemption snapshot is signed by key {key_id!r}, which "
                                  "is not in the pinned keyring")
        try:
            good = self._check(public, SNAPSHOT_CONTEXT + body, bytes.fromhex(signature))
        except ValueError:
            good = False
        if not good:
            raise SnapshotRefused("the redemption snapshot's signature does not verify with "
                                  f"key {key_id}")


# --- the PoP ---------------------------------------------------------------------------------


def pop_app(built: Built, releases: ReleaseSource, *, signer: Signer, clock: Clock,
            verify_token: TokenVerifier, outbox: Outbox, control_plane: str | None = None,
            random: Callable[[int], bytes] = secrets.token_bytes) -> PopApp:
    """The core's API for this Worker: the same `PopApp` the self-hosted PoP runs, the
    checkout script and demo shop included."""
    claim_page = None if not control_plane else control_plane.rstrip("/") + "/claim"
    return PopApp(merchant_id=built.merchant_id, pop_id=built.pop_id, pop_name=built.pop_name,
                  signer=signer, clock=clock, releases=releases, outbox=outbox,
                  random=random, verify_token=verify_token, claim_page=claim_page)


def chain_name(pop_id: int) -> str:
    """The name of the PoP's receipt chain Durable Object."""
    return f"pop-{pop_id}"


def route(path: str, method: str) -> str:
    """Where a request is answered: CHAIN (the Durable Object that writes receipts) or EDGE
    (the isolate that took it, the checkout script and demo shop included). A preflight needs
    no chain."""
    if path in CHAIN_PATHS and method.upper() != "OPTIONS":
        return CHAIN
    return EDGE


def path_of(url: str) -> str:
    """The decoded path of a URL, as a WSGI server gives it to the self-hosted PoP."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path, errors="replace") or "/"


def http_request(method: str, url: str, headers: Iterable[tuple[str, str]],
                 body: bytes) -> HttpRequest:
    return HttpRequest(method=method.upper(), path=path_of(url),
                       query=urllib.parse.urlsplit(url).query,
                       headers={name.lower(): value for name, value in headers}, body=body)


def declared_too_large(content_length: str | None) -> bool:
    """Whether a request's Content-Length is over the core's limit, so the body is refused
    before it is read."""
    text = (content_length or "").strip()
    return text.isdigit() and int(text) > MAX_BODY


def error_response(status: int, field: str | None, message: str) -> HttpResponse:
    """An error the host answers itself, in the core's envelope and with its CORS headers."""
    body = json.dumps({"error": {"field": field, "message": message}}).encode("utf-8")
    return HttpResponse(status, [("Content-Type", JSON_TYPE), ("Cache-Control", "no-store"),
                                 *CORS], body)


def too_large() -> HttpResponse:
    return error_response(413, "body", f"the body is over {MAX_BODY} bytes")


class NoReceipts:
    """The outbox of the edge isolates: checkouts and refunds never reach their `PopApp`
    (`route` sends them to the chain), so nothing is ever appended here."""

    def append(self, build: Build) -> tuple[bytes, bytes]:
        raise RuntimeError("receipts are written by the receipt chain's Durable Object")

    def depth(self) -> int:
        return 0

    def find(self, receipt_id: str) -> bytes | None:
        return None

    def refunded(self, receipt_id: str) -> set[int]:
        return set()


# --- the receipt chain -------------------------------------------------------------------------


class Store(Protocol):
    """A Durable Object's synchronous key-value storage (`ctx.storage.kv`), strings only."""

    def get(self, key: str) -> str | None: ...

    def write(self, puts: Mapping[str, str], deletes: Sequence[str] = ()) -> None:
        """All of it or nothing (`ctx.storage.transactionSync`)."""

    def scan(self, prefix: str, limit: int) -> list[tuple[str, str]]:
        """The first `limit` entries whose key starts with `prefix`, in key order."""


HEAD = "head"  # "<seq> <digest>" of the last receipt
RECEIPT = "receipt:"  # + seq key: {"body": text, "signature": hex}, what the control plane takes
BY_ID = "id:"  # + receipt id: seq key
REFUNDED = "refunded:"  # + sale id: the line indices refunded so far (JSON list)
UNSENT = "unsent:"  # + seq key: present until the queue has taken the receipt


class ChainError(RuntimeError):
    """A receipt the chain will not store; the checkout answers 503 and commits nothing."""


def _seq_key(seq: int) -> str:
    return f"{seq:020d}"  # fixed width: key order is chain order


class ChainOutbox:
    """The PoP's `Outbox` in its Durable Object: every receipt it issued, chained, kept for
    refunds, and marked until the queue has taken it.

    `build` runs between reading the head and writing the receipt; it signs through
    WebCrypto, and Python cannot suspend inside `transactionSync`, so the receipt is written
    afterwards, in one transaction that first checks the head has not moved. It cannot move:
    the Durable Object runs one request of the chain at a time (`entry.ReceiptChain`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _head(self) -> tuple[int, str]:
        head = self._store.get(HEAD)
        if head is None:
            return 0, receipt.GENESIS
        seq, digest = head.split(" ")
        return int(seq), digest

    def append(self, build: Build) -> tuple[bytes, bytes]:
        seq, prev = self._head()
        body, signature = build(seq + 1, prev)
        try:
            fields = receipt.decode(body)
        except receipt.ReceiptError as exc:
            raise ChainError(f"not a receipt: {exc}") from None
        if fields["seq"] != seq + 1 or fields["prev"] != prev:
            raise ChainError(f"the receipt names seq {fields['seq']} after {fields['prev']}; "
                             f"the chain's next is {seq + 1} after {prev}")
        if len(body) > MAX_RECEIPT:
            raise ChainError(f"the receipt is {len(body):,} bytes; a queue message holds at "
                             f"most {MAX_RECEIPT:,}")
        key = _seq_key(seq + 1)
        puts = {HEAD: f"{seq + 1} {receipt.digest(body)}",
                RECEIPT + key: json.dumps({"body": body.decode("utf-8"),
                                           "signature": signature.hex()}),
                BY_ID + fields["id"]: key, UNSENT + key: ""}
        if fields["kind"] == "refund":
            sale = str(fields["refund_of"])
            puts[REFUNDED + sale] = json.dumps(sorted(self.refunded(sale) | set(fields["lines"])))
        if self._head() != (seq, prev):
            raise ChainError("the chain moved while the receipt was being signed")
        self._store.write(puts)
        return body, signature

    def depth(self) -> int:
        return len(self._store.scan(UNSENT, 1_000_000))

    def find(self, receipt_id: str) -> bytes | None:
        key = self._store.get(BY_ID + receipt_id)
        stored = None if key is None else self._store.get(RECEIPT + key)
        return None if stored is None else str(json.loads(stored)["body"]).encode("utf-8")

    def refunded(self, receipt_id: str) -> set[int]:
        lines = self._store.get(REFUNDED + receipt_id)
        return set() if lines is None else {int(index) for index in json.loads(lines)}

    def undelivered(self, limit: int) -> list[tuple[str, dict[str, str]]]:
        """The oldest receipts the queue has not taken: (seq key, queue message body)."""
        found = []
        for marker, _ in self._store.scan(UNSENT, limit):
            key = marker[len(UNSENT):]
            stored = self._store.get(RECEIPT + key)
            if stored is not None:
                found.append((key, json.loads(stored)))
        return found

    def delivered(self, keys: Sequence[str]) -> None:
        self._store.write({}, [UNSENT + key for key in keys])


# --- the queue's consumer -------------------------------------------------------------------


def upload_body(messages: Sequence[Any]) -> bytes:
    """POST /v1/receipts's body for a batch of queue messages (each a stored receipt's
    {"body", "signature"})."""
    return json.dumps({"receipts": list(messages)}, ensure_ascii=False).encode("utf-8")


def acknowledged(status: int, answer: bytes, sent: int) -> bool:
    """Whether the control plane took the batch: a 2xx with a result for every receipt (every
    result is final: booked, flagged, held, duplicate or rejected), so the messages may go.
    Anything else and the whole batch goes again; the control plane dedupes."""
    if not 200 <= status < 300:
        return False
    try:
        results = json.loads(answer)["results"]
    except (ValueError, TypeError, KeyError):
        return False
    return isinstance(results, list) and len(results) == sent


def retry_delay(attempts: int) -> int:
    """Seconds before a batch the control plane did not take goes again: doubling from 10 s
    to an hour, so a control plane coming back is not flooded."""
    return min(MAX_RETRY_DELAY, 10 << min(max(attempts - 1, 0), 12))
