"""The Cloudflare Worker: the PoP's HTTP API at the edge, its receipt chain, and the consumer of
its receipts queue (docs/cloudflare.md). Runs only in the Workers runtime (Pyodide), where
`js`, `pyodide` and `workers` exist; the logic it calls is `worker`'s, tested on CPython.

The import runs once per Worker version, into its memory snapshot: it reads the release the
build shipped and checks its signature against the pinned keyring (no clock, no randomness,
no network). A release that does not check out raises here, so the version never serves.

- `Default.fetch`: the checkout script, the API's edge endpoints through the core, and
  checkouts and refunds forwarded to the PoP's `ReceiptChain`.
- `SNAPSHOTS`: the isolate's redemption snapshot (`worker.Snapshots`), shared by the edge and
  the receipt chain; a request that needs it refreshes it first, once per time to live, with a
  fetch the runtime aborts after `worker.SNAPSHOT_WAIT_MS`.
- `ReceiptChain`: one Durable Object per PoP, the chain's single writer; it stores each
  receipt before answering and hands it to the `RECEIPTS` queue, retrying from an alarm.
- `Default.queue`: posts batches to the control plane's POST /v1/receipts with the PoP
  secret; a batch is acknowledged only when the control plane answered for every receipt.

Bindings and secrets (wrangler.toml, docs/cloudflare.md): CHAIN (Durable Object namespace),
RECEIPTS (queue producer), CONTROL_PLANE (var: where receipts go and the snapshot comes from),
POP_PRIVATE_KEY and POP_SECRET (secrets).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import JsException, run_sync, to_js  # type: ignore[import-not-found]
from workers import (  # type: ignore[import-not-found]
    DurableObject,
    WorkerEntrypoint,
    import_from_javascript,
)

from edge_worker.cloudflare import worker
from edge_worker.core.engine import Runner
from edge_worker.core.pop import HttpRequest, HttpResponse, PopApp, Signer
from edge_worker.engines.js_engine import JsEngine

log = logging.getLogger("poprules.pop")

RULES_GLUE = "rules.mjs"  # exports rulesModule(): rules.wasm, compiled by the runtime
DELIVERY_BATCH = 100
REDELIVER_MS = 30_000  # a receipt the queue refused goes again from an alarm this much later

BUILT = worker.Built.of(importlib.import_module(worker.RELEASE_MODULE))


def _compiled_runner() -> Runner:
    """The rule module as the runtime compiled it; reachable from a handler only."""
    return JsEngine().load_compiled(import_from_javascript(RULES_GLUE).rulesModule())


LIVE = worker.load_release(BUILT, _compiled_runner)
_ED25519 = {"name": "Ed25519"}
_PUBLIC_KEYS: dict[str, Any] = {}  # hex -> CryptoKey, per isolate


def _js(value: Any) -> Any:
    return to_js(value, dict_converter=js.Object.fromEntries)


def _raw(wrapped: Any, attribute: str) -> Any:
    """The JavaScript object under the Python SDK's wrapper, so bindings are called as the
    Workers documentation describes them."""
    return getattr(wrapped, attribute, wrapped)


def _clock() -> int:
    return int(js.Date.now() // 1000)


async def _signer(env: Any) -> Signer:
    """The PoP's signer: WebCrypto Ed25519 with the key from POP_PRIVATE_KEY, imported once
    per isolate; each signature waits for WebCrypto through `run_sync`."""
    key = await js.crypto.subtle.importKey(
        "pkcs8", to_js(worker.pkcs8_ed25519(worker.seed_of(str(env.POP_PRIVATE_KEY)))),
        _js(_ED25519), False, _js(["sign"]))

    def sign(message: bytes) -> bytes:
        signature: bytes = run_sync(js.crypto.subtle.sign(_js(_ED25519), key,
                                                          to_js(message))).to_bytes()
        return signature

    return sign


def _check(public_hex: str, message: bytes, signature: bytes) -> bool:
    """One Ed25519 check by WebCrypto, for customer tokens. A key that WebCrypto will not
    import is the release's fault: ValueError, which the core answers as 503."""
    key = _PUBLIC_KEYS.get(public_hex)
    try:
        if key is None:
            key = run_sync(js.crypto.subtle.importKey(
                "raw", to_js(bytes.fromhex(public_hex)), _js(_ED25519), False,
                _js(["verify"])))
            _PUBLIC_KEYS[public_hex] = key
        return bool(run_sync(js.crypto.subtle.verify(_js(_ED25519), key, to_js(signature),
                                                     to_js(message))))
    except JsException as exc:
        raise ValueError(f"WebCrypto refused the key {public_hex}: {exc}") from None


# One per isolate, in its memory; the import only makes it (no network at import).
SNAPSHOTS = worker.Snapshots(BUILT, LIVE, _check)


async def _get(url: str, headers: Mapping[str, str], *, wait_ms: int) -> worker.Answer:
    """A GET whose whole answer (headers and body) must come within `wait_ms`, or the runtime
    aborts it: a slow control plane costs a request that long, once per TTL."""
    try:
        reply = await js.fetch(url, _js({
            "headers": dict(headers),
            "signal": js.AbortSignal.timeout(wait_ms)}))
        body = (await reply.arrayBuffer()).to_bytes()
    except JsException as exc:
        raise worker.Unreachable(f"GET {url}: {exc}") from None
    names = js.Object.fromEntries(reply.headers).to_py()
    return worker.Answer(int(reply.status),
                         {str(name).lower(): str(value) for name, value in names.items()}, body)


async def _refresh(env: Any, request: HttpRequest) -> None:
    if worker.needs_snapshot(request.path, request.method):
        # The var SNAPSHOT_WAIT_MS overrides the default cap (a far control plane may need it).
        wait_ms = int(getattr(env, "SNAPSHOT_WAIT_MS", worker.SNAPSHOT_WAIT_MS))
        await SNAPSHOTS.refresh(functools.partial(_get, wait_ms=wait_ms), str(env.CONTROL_PLANE),
                                str(env.POP_SECRET), float(js.Date.now()))


async def _app(env: Any, outbox: Any) -> PopApp:
    return worker.pop_app(BUILT, SNAPSHOTS, signer=await _signer(env), clock=_clock,
                          verify_token=worker.token_verifier(_check), outbox=outbox,
                          control_plane=str(env.CONTROL_PLANE))


async def _read(request: Any) -> HttpRequest | HttpResponse:
    """The core's request, or the host's own 413 when the declared body is too long."""
    if worker.declared_too_large(request.headers.get("content-length")):
        return worker.too_large()
    body = (await request.arrayBuffer()).to_bytes()
    headers = js.Object.fromEntries(request.headers).to_py()
    return worker.http_request(str(request.method), str(request.url), headers.items(), body)


def _response(response: HttpResponse, method: str) -> Any:
    """A JavaScript Response; HEAD and bodiless statuses go without a body."""
    bodiless = method.upper() == "HEAD" or response.status in (204, 304) or not response.body
    return js.Response.new(None if bodiless else to_js(response.body),
                           _js({"status": response.status,
                                "headers": [list(pair) for pair in response.headers]}))


_EDGE_APP: PopApp | None = None


class Default(WorkerEntrypoint):  # type: ignore[misc]
    async def fetch(self, request: Any) -> Any:
        request = _raw(request, "js_object")
        method = str(request.method).upper()
        try:
            return await self._serve(request, method)
        except Exception:
            log.exception("%s %s failed", method, request.url)
            return _response(worker.error_response(500, None, "internal error"), method)

    async def _serve(self, request: Any, method: str) -> Any:
        global _EDGE_APP  # one per isolate: it holds the imported key and the metrics
        env = _raw(self.env, "_env")
        where = worker.route(worker.path_of(str(request.url)), method)
        if where == worker.CHAIN:
            chain = env.CHAIN
            stub = chain.get(chain.idFromName(worker.chain_name(BUILT.pop_id)))
            return await stub.fetch(request)
        read = await _read(request)
        if isinstance(read, HttpResponse):
            return _response(read, method)
        await _refresh(env, read)
        if _EDGE_APP is None:
            _EDGE_APP = await _app(env, worker.NoReceipts())
        return _response(_EDGE_APP.handle(read), method)

    async def queue(self, batch: Any, *args: Any) -> None:
        batch = _raw(batch, "_binding")
        env = _raw(self.env, "_env")
        messages = list(batch.messages)
        items = [_python(message.body) for message in messages]
        status, answer = 0, b""
        try:
            reply = await js.fetch(
                str(env.CONTROL_PLANE).rstrip("/") + "/v1/receipts",
                _js({"method": "POST", "body": worker.upload_body(items).decode("utf-8"),
                     "headers": {"Content-Type": "application/json",
                                 "Authorization": f"Bearer {env.POP_SECRET}"}}))
            status, answer = int(reply.status), (await reply.arrayBuffer()).to_bytes()
        except JsException as exc:
            log.warning("POST /v1/receipts: %s", exc)
        if worker.acknowledged(status, answer, len(items)):
            batch.ackAll()
            return
        log.warning("the control plane did not take %d receipts (%d); they go again",
                    len(items), status)
        for message in messages:
            message.retry(_js({"delaySeconds": worker.retry_delay(int(message.attempts))}))


def _python(value: Any) -> Any:
    return value.to_py() if hasattr(value, "to_py") else value


class _KvStore:
    """`worker.Store` over a Durable Object's synchronous KV storage."""

    def __init__(self, storage: Any) -> None:
        self._storage = storage
        self._kv = storage.kv

    def get(self, key: str) -> str | None:
        value = self._kv.get(key)
        return None if value is None or value is js.undefined else str(value)

    def write(self, puts: Mapping[str, str], deletes: Sequence[str] = ()) -> None:
        def apply() -> None:
            for key, value in puts.items():
                self._kv.put(key, value)
            for key in deletes:
                self._kv.delete(key)

        self._storage.transactionSync(apply)

    def scan(self, prefix: str, limit: int) -> list[tuple[str, str]]:
        entries = self._kv.list(_js({"prefix": prefix, "limit": limit}))
        return [(str(entry[0]), str(entry[1])) for entry in entries]


class ReceiptChain(DurableObject):  # type: ignore[misc]
    """The PoP's receipt chain: checkouts and refunds, one at a time."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._storage = _raw(ctx, "_ctx").storage
        self._env = _raw(env, "_env")
        self._outbox = worker.ChainOutbox(_KvStore(self._storage))
        # The core suspends inside a request (each signature waits for WebCrypto), and the
        # runtime may start another request then; the chain must not interleave two.
        self._turn = asyncio.Lock()
        self._app: PopApp | None = None
        self._delivering = False

    async def fetch(self, request: Any) -> Any:
        request = _raw(request, "js_object")
        method = str(request.method).upper()
        try:
            read = await _read(request)
            if isinstance(read, HttpResponse):
                return _response(read, method)
            await _refresh(self._env, read)
            async with self._turn:
                if self._app is None:
                    self._app = await _app(self._env, self._outbox)
                response = self._app.handle(read)
        except Exception:
            log.exception("%s %s failed in the receipt chain", method, request.url)
            return _response(worker.error_response(500, None, "internal error"), method)
        await self._deliver()
        return _response(response, method)

    async def alarm(self, *args: Any) -> None:
        await self._deliver()

    async def _deliver(self) -> None:
        """Hand the stored receipts the queue has not taken to it, oldest first. Already
        stored, so a failure loses nothing: an alarm tries again."""
        if self._delivering:
            return  # the running delivery loops until nothing is left
        self._delivering = True
        try:
            while pending := self._outbox.undelivered(DELIVERY_BATCH):
                sent = []
                try:
                    for key, message in pending:
                        await self._env.RECEIPTS.send(_js(message))
                        sent.append(key)
                except JsException as exc:
                    log.warning("the receipts queue refused a receipt: %s", exc)
                    self._outbox.delivered(sent)
                    await self._storage.setAlarm(js.Date.now() + REDELIVER_MS)
                    return
                self._outbox.delivered(sent)
        finally:
            self._delivering = False
