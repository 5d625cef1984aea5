"""Release sync: the PoP's `ReleaseSource`. It serves the last good release from disk at
start, then a background thread polls the control plane for the release of the PoP's group
and for the redemption snapshot, and swaps in what verifies.

A release is taken only when its signature is good by a key of the keyring pinned at
enrollment (`poprules pop pin-keys` adds keys after a rotation), the bundle's parts and hash
match what was signed, and its number is not lower than the one running: a replayed old
release, even a genuinely signed one, would bring back old prices. A rollback is a new, higher
number (docs/control_plane.md), so it passes. Whatever fails is logged and kept in `status()`
for the operator, and the last good release keeps serving.

The swap is one attribute assignment of an immutable `Live`: a request reads `current()` once
and finishes on that release, while the next request gets the new one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from edge_worker.core.engine import Engine
from edge_worker.core.pop import Live
from edge_worker.core.redemptions import Redemptions, SnapshotError
from edge_worker.core.release import Release
from edge_worker.host.background import Background
from edge_worker.host.state import Identity, State, StateError, StoredRelease, StoredSnapshot
from poprules.bundle import BundleError, release_statement

SNAPSHOT_CONTEXT = b"poprules-redemptions/1\n"  # control_plane.signing.SNAPSHOT_CONTEXT
DEFAULT_POLL = 5.0
TIMEOUT = 10.0
log = logging.getLogger("poprules.pop")


class Unreachable(ConnectionError):
    """The control plane did not answer (network, TLS, a torn answer)."""


class Refused(ValueError):
    """A release or snapshot the PoP will not run; the message says why."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class ControlPlaneClient:
    """Just enough HTTP for a PoP: the standard library, the PoP secret as bearer token."""

    def __init__(self, base_url: str, secret: str | None = None, *,
                 timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                json_body: Any = None) -> Answer:
        sent = dict(headers or {})
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        if self.secret is not None:
            sent["Authorization"] = f"Bearer {self.secret}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=sent,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Answer(response.status, _headers(response.headers), response.read())
        except urllib.error.HTTPError as answer:  # any status but 2xx, 304 included
            with answer:
                return Answer(answer.code, _headers(answer.headers), answer.read())
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"{method} {self.base_url}{path}: {exc}") from None


def _headers(message: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in message.items()}


def verify_release(keyring: Mapping[str, str], merchant_id: int, number: int,
                   release_hash: str, key_id: str, signature: str) -> None:
    """Raise `Refused` unless `signature` is the control plane's, by a pinned key, over this
    merchant's release `number` being `release_hash`."""
    try:
        statement = release_statement(merchant_id, number, release_hash)
    except ValueError as exc:
        raise Refused(f"not a release: {exc}") from None
    _verify(keyring, key_id, statement, signature, "release")


def verify_snapshot(keyring: Mapping[str, str], body: bytes, key_id: str,
                    signature: str) -> None:
    _verify(keyring, key_id, SNAPSHOT_CONTEXT + body, signature, "redemption snapshot")


def _verify(keyring: Mapping[str, str], key_id: str, message: bytes, signature: str,
            what: str) -> None:
    public = keyring.get(key_id)
    if public is None:
        raise Refused(f"the {what} is signed by key {key_id!r}, which is not in the pinned "
                      f"keyring (poprules pop pin-keys adds keys after a rotation)")
    try:
        VerifyKey(bytes.fromhex(public)).verify(message, bytes.fromhex(signature))
    except (BadSignatureError, ValueError, TypeError):
        raise Refused(f"the {what}'s signature does not verify with key {key_id}") from None


@dataclass(frozen=True)
class _Running:
    """The release running and how it was signed, as persisted."""
    number: int
    hash: str
    key_id: str
    signature: str


class ReleaseSync:
    """The `ReleaseSource` of the CPython host. Call `load_stored()` then `start()`."""

    def __init__(self, state: State, identity: Identity, client: ControlPlaneClient, *,
                 poll: float = DEFAULT_POLL, engine: Engine | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._identity = identity
        self._client = client
        self._poll = poll
        self._engine = engine
        self._clock = clock
        self._live: Live | None = None
        self._running: _Running | None = None
        self._snapshot: StoredSnapshot | None = None
        self._problems: dict[str, str] = {}
        self._last_contact: float | None = None
        self._update = threading.Lock()  # one updater at a time; readers never wait
        self._loop = Background("poprules-sync", self._step)

    def current(self) -> Live | None:
        return self._live

    def status(self) -> dict[str, Any]:
        """For /healthz: what runs, since when the control plane was last heard, and why
        the latest release or snapshot was not taken, if it was not."""
        running, snapshot = self._running, self._snapshot
        return {
            "release": None if running is None else {"number": running.number,
                                                     "hash": running.hash},
            "snapshot": None if snapshot is None else snapshot.version,
            "last_contact": None if self._last_contact is None else int(self._last_contact),
            "problems": dict(self._problems),
        }

    # start and stop -----------------------------------------------------------------------

    def load_stored(self) -> None:
        """Serve what was persisted, checked as if it had just arrived (against the pinned
        keyring), so a PoP starts and serves with the control plane unreachable."""
        with self._update:
            for item, take in (("release", self._stored_release),
                               ("snapshot", self._stored_snapshot)):
                try:
                    take()
                except (StateError, Refused) as exc:
                    self._problem(item, f"the stored {item} does not load: {exc}")

    def _stored_release(self) -> None:
        stored = self._state.release()
        if stored is not None:
            self._take_release(stored, persist=False)

    def _stored_snapshot(self) -> None:
        stored = self._state.snapshot()
        if stored is not None:
            self._take_snapshot(stored, persist=False)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._loop.stop(timeout)

    def _step(self) -> float:
        self.poll_once()
        return self._poll

    # polling --------------------------------------------------------------------------------

    def poll_once(self) -> None:
        """One round: the release, then the snapshot. Never raises: a failure is logged and
        kept in `status()`, and what runs keeps running."""
        with self._update:
            for item, pull in (("release", self._pull_release),
                               ("snapshot", self._pull_snapshot)):
                try:
                    pull()
                except Unreachable as exc:
                    self._problem("control_plane", f"unreachable: {exc}")
                    return
                except (Refused, StateError) as exc:
                    self._problem(item, str(exc))
                except Exception as exc:  # the thread must outlive any bug or bad bundle
                    log.exception("%s sync failed", item)
                    self._problem(item, f"{type(exc).__name__}: {exc}")
                else:
                    self._problems.pop(item, None)
            self._problems.pop("control_plane", None)

    def _get(self, path: str, etag: str | None) -> Answer:
        answer = self._client.request(
            "GET", path, headers={} if etag is None else {"If-None-Match": etag})
        if answer.status >= 500:
            raise Unreachable(f"GET {path}: {answer.status}")
        self._last_contact = self._clock()
        return answer

    def _pull_release(self) -> None:
        running = self._running
        answer = self._get(f"/v1/pops/{self._identity.pop_id}/release",
                           None if running is None else f'"{running.hash}"')
        if answer.status in (304, 404):  # unchanged; nothing rolled out to the group yet
            return
        if answer.status != 200:
            raise Refused(f"GET release: {answer.status} {answer.body[:200]!r}")
        try:
            number = int(answer.headers["x-poprules-release"])
            stored = StoredRelease(number, answer.headers["x-poprules-release-hash"],
                                   answer.headers["x-poprules-key-id"],
                                   answer.headers["x-poprules-signature"], answer.body)
        except (KeyError, ValueError) as exc:
            raise Refused(f"the release answer lacks its signature headers ({exc})") from None
        self._take_release(stored, persist=True)

    def _take_release(self, stored: StoredRelease, *, persist: bool) -> None:
        verify_release(self._state.keyring(), self._identity.merchant_id, stored.number,
                       stored.hash, stored.key_id, stored.signature)
        running, live = self._running, self._live
        if running is not None:
            if stored.number < running.number:
                raise Refused(f"release {stored.number} is older than release "
                              f"{running.number}, which runs: a downgrade")
            if stored.number == running.number:
                if stored.hash != running.hash:
                    raise Refused(f"release {stored.number} comes with another hash "
                                  f"({stored.hash}) than the one running ({running.hash})")
                return
        if live is not None and running is not None and stored.hash == running.hash:
            release = live.release  # the same bundle under a new number (a rollback)
        else:
            release = self._load(stored)
        redemptions = self._read_snapshot(release)
        if persist:
            self._state.write_release(stored)
        self._running = _Running(stored.number, stored.hash, stored.key_id, stored.signature)
        self._live = Live(release=release, number=stored.number, redemptions=redemptions)
        log.info("running release %d (%s)", stored.number, stored.hash)

    def _load(self, stored: StoredRelease) -> Release:
        from poprules.api import load_release

        try:
            release = load_release(stored.bundle, self._engine)
        except BundleError as exc:
            raise Refused(f"release {stored.number}: {exc}") from None
        if release.hash != stored.hash:
            raise Refused(f"release {stored.number}: the bundle's hash is {release.hash}, "
                          f"the signature names {stored.hash}")
        return release

    def _pull_snapshot(self) -> None:
        held = self._snapshot
        answer = self._get(f"/v1/pops/{self._identity.pop_id}/redemptions",
                           None if held is None else _snapshot_etag(held.body))
        if answer.status in (304, 404):  # unchanged; no snapshot yet (nothing spent)
            return
        if answer.status != 200:
            raise Refused(f"GET redemptions: {answer.status} {answer.body[:200]!r}")
        try:
            version = int(answer.headers["x-poprules-snapshot-version"])
            stored = StoredSnapshot(version, answer.headers["x-poprules-key-id"],
                                    answer.headers["x-poprules-signature"], answer.body)
        except (KeyError, ValueError) as exc:
            raise Refused(f"the snapshot answer lacks its signature headers ({exc})") from None
        self._take_snapshot(stored, persist=True)

    def _take_snapshot(self, stored: StoredSnapshot, *, persist: bool) -> None:
        verify_snapshot(self._state.keyring(), stored.body, stored.key_id, stored.signature)
        try:
            document = json.loads(stored.body)
            version, merchant = document["version"], document["merchant"]
        except (ValueError, TypeError, KeyError) as exc:
            raise Refused(f"not a redemption snapshot: {exc}") from None
        if type(version) is not int or merchant != self._identity.merchant_id:
            raise Refused(f"the snapshot is merchant {merchant}'s version {version!r}")
        stored = replace(stored, version=version)  # the signed version, not the header's
        held = self._snapshot
        if held is not None:
            if version < held.version:
                raise Refused(f"snapshot version {version} is older than version "
                              f"{held.version}: a replay")
            if version == held.version:
                if stored.body != held.body:
                    raise Refused(f"snapshot version {version} comes with other content")
                return
        live = self._live
        redemptions = None
        if live is not None:
            try:
                redemptions = Redemptions.from_snapshot(
                    stored.body, release=live.release, merchant=self._identity.merchant_id)
            except SnapshotError as exc:
                raise Refused(f"snapshot version {version}: {exc}") from None
        if persist:
            self._state.write_snapshot(stored)
        self._snapshot = stored
        if live is not None:
            self._live = replace(live, redemptions=redemptions)
            self._problems.pop("redemptions", None)
        log.info("redemption snapshot version %d", version)

    def _read_snapshot(self, release: Release) -> Redemptions | None:
        """The held snapshot read for a release about to run. When it does not fit (another
        program), the release runs without redemption state until a snapshot for it comes."""
        held = self._snapshot
        if held is None:
            return None
        try:
            redemptions = Redemptions.from_snapshot(held.body, release=release,
                                                    merchant=self._identity.merchant_id)
        except SnapshotError as exc:
            self._problem("redemptions", f"snapshot version {held.version} does not fit "
                          f"release {release.hash}: {exc}")
            return None
        self._problems.pop("redemptions", None)
        return redemptions

    def _problem(self, item: str, reason: str) -> None:
        log.warning("%s: %s", item, reason)
        self._problems[item] = reason


def _snapshot_etag(body: bytes) -> str:
    return f'"sha256:{hashlib.sha256(body).hexdigest()}"'
