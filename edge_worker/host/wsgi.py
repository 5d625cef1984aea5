"""The PoP under WSGI: an adapter from WSGI to the core's plain request -> response function,
the assembled PoP (`Host`), and granian serving it.

granian runs ONE worker process: the receipt chain has one writer, and the release sync and
the uploader run once, as threads of that worker, started when granian loads the app in it
and stopped when the worker exits (SIGTERM stops it cleanly, after the requests in flight).
Its HTTP side is Rust and runs outside the interpreter lock; only the app's own work takes the
lock, in a few threads (`--threads`, 2 by default). Under gunicorn's gthread worker the same
PoP spent ~570 µs of CPU per request outside the core, under the lock, and a mixed load at
500 requests/s had a quote p99 of 7–9 ms; under granian with 2 threads, 4 ms (docs/performance.md,
"PoP profile"). More threads only make more of them wait for the one lock.

The access log is off unless asked for (`--access-log`); `/metrics` counts the requests by
route and status and times them, and a failure is logged with its cause either way.
"""

from __future__ import annotations

import atexit
import http
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_worker.core.pop import HttpRequest, HttpResponse, PopApp
from edge_worker.host.outbox import Outbox
from edge_worker.host.state import OUTBOX, State
from edge_worker.host.sync import DEFAULT_POLL, ControlPlaneClient, ReleaseSync
from edge_worker.host.uploader import Uploader

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BODY = 1 << 20  # 1 MiB: far above any checkout, far below what could hurt the PoP
CLOCK_OFFSET = "POPRULES_POP_CLOCK_OFFSET"  # seconds added to the PoP's clock, for tests
_CHUNK = 64 * 1024
log = logging.getLogger("poprules.pop")

Handler = Callable[[HttpRequest], HttpResponse]


class WsgiApp:
    """A WSGI application around the core's `handle`. The body is read by chunks and never
    past `max_body`, whether the client sent a Content-Length or chunks."""

    def __init__(self, handle: Handler, *, max_body: int = MAX_BODY) -> None:
        self._handle = handle
        self._max_body = max_body

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            body = self._body(environ)
        except _BadBody as exc:
            response = _error(exc.status, exc.message)
        else:
            request = HttpRequest(method=method, path=_path(environ),
                                  query=str(environ.get("QUERY_STRING", "")),
                                  headers=_request_headers(environ), body=body)
            try:
                response = self._handle(request)
            except Exception:  # the core answers its own errors; this is a bug, not input
                log.exception("%s %s failed", method, request.path)
                response = _error(500, "internal error")
        headers = list(response.headers)
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(len(response.body))))
        start_response(_status_line(response.status), headers)
        return [] if method == "HEAD" else [response.body]

    def _body(self, environ: WSGIEnvironment) -> bytes:
        stream = environ.get("wsgi.input")
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if declared:
            if not declared.isdigit():
                raise _BadBody(400, "Content-Length is not a number")
            length = int(declared)
            if length > self._max_body:
                raise _BadBody(413, f"the body is larger than {self._max_body} bytes")
            return _read(stream, length) if length else b""
        if stream is None or not environ.get("wsgi.input_terminated"):
            return b""  # no length and no end marker: WSGI says there is no body
        body = _read(stream, self._max_body + 1)
        if len(body) > self._max_body:
            raise _BadBody(413, f"the body is larger than {self._max_body} bytes")
        return body


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _read(stream: Any, limit: int) -> bytes:
    """At most `limit` bytes, by chunks, stopping early at the end of the stream."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _path(environ: WSGIEnvironment) -> str:
    # WSGI gives the path as bytes decoded as Latin-1; the core reads UTF-8.
    raw = str(environ.get("PATH_INFO", "")).encode("latin-1")
    return raw.decode("utf-8", errors="replace") or "/"


def _request_headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = str(value)
    return headers


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _error(status: int, message: str) -> HttpResponse:
    body = json.dumps({"error": {"field": "body" if status == 413 else None,
                                 "message": message}}).encode("utf-8")
    return HttpResponse(status=status, headers=[("Content-Type", "application/json")],
                        body=body)


def pop_clock() -> Callable[[], int]:
    """Unix seconds, shifted by POPRULES_POP_CLOCK_OFFSET when set (tests move time)."""
    offset = float(os.environ.get(CLOCK_OFFSET) or 0)
    return lambda: int(time.time() + offset)


@dataclass
class Host:
    """A running PoP: the core app and the threads that keep it fed and drained."""
    app: WsgiApp
    sync: ReleaseSync
    uploader: Uploader
    outbox: Outbox

    def stop(self) -> None:
        self.uploader.stop()
        self.sync.stop()
        self.outbox.close()
        log.info("stopped: uploads, release sync and the outbox")


def start_host(path: str | Path, *, poll: float = DEFAULT_POLL) -> Host:
    """Read the state directory, serve its last good release, start the sync and upload
    threads. Raises `StateError` when the directory is not an enrolled PoP's."""
    state = State(path)
    identity = state.identity()
    key = state.signing_key()
    client = ControlPlaneClient(identity.control_plane, state.secret())
    sync = ReleaseSync(state, identity, client, poll=poll)
    sync.load_stored()
    outbox = Outbox(state.path / OUTBOX)
    uploader = Uploader(outbox, client)
    core = PopApp(merchant_id=identity.merchant_id, pop_id=identity.pop_id, pop_name=identity.name,
                  signer=lambda message: key.sign(message).signature, clock=pop_clock(),
                  releases=sync, outbox=outbox,
                  claim_page=identity.control_plane.rstrip("/") + "/claim")
    sync.start()
    uploader.start()
    return Host(WsgiApp(core.handle), sync, uploader, outbox)


STATE_ENV = "POPRULES_POP_STATE"  # how `serve` tells granian's worker process what to run
POLL_ENV = "POPRULES_POP_POLL"


def pop_app() -> WsgiApp:
    """The app of granian's worker process (a factory, imported there by name): the PoP of
    the state directory `serve` named, its background threads stopped when the worker exits."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(message)s")
    host = start_host(os.environ[STATE_ENV], poll=float(os.environ[POLL_ENV]))
    atexit.register(host.stop)
    return host.app


def serve(path: str | Path, *, bind: str, poll: float, threads: int,
          access_log: bool = False) -> None:
    """Run granian until SIGTERM or SIGINT: its Rust HTTP server hands each request to one of
    `threads` Python threads of one worker process (docs/performance.md, "PoP profile")."""
    from granian import Granian
    from granian.constants import Interfaces

    os.environ[STATE_ENV], os.environ[POLL_ENV] = str(Path(path).resolve()), repr(poll)
    # A spawned worker leaves through the interpreter's own exit, which runs `pop_app`'s atexit
    # (a forked one leaves with os._exit): uploads and sync stop, the outbox is closed.
    multiprocessing.set_start_method("spawn", force=True)
    if bind.startswith("unix:"):
        where: dict[str, Any] = {"uds": Path(bind.removeprefix("unix:"))}
    else:
        address, _, port = bind.rpartition(":")
        where = {"address": address.strip("[]") or "127.0.0.1", "port": int(port)}
    Granian(f"{__name__}:pop_app", factory=True, interface=Interfaces.WSGI, workers=1,
            blocking_threads=threads, log_access=access_log,
            **where).serve()
