"""Release and snapshot sync against a fake control plane: what verifies is swapped in and
persisted; a tampered, wrongly keyed, badly signed or older release (or snapshot) is refused,
and the last good one keeps serving, across restarts and with the control plane away."""

from __future__ import annotations

import socket
import time

import pytest

from control_plane.coupons import RedemptionState, snapshot_body
from edge_worker.host.state import State, StoredRelease
from edge_worker.host.sync import ControlPlaneClient, ReleaseSync
from poprules.bundle import code_hash
from tests.edge_worker.host.conftest import (
    COUPON_KEYS,
    MERCHANT,
    OTHER_KEY_ID,
    ROGUE_KEY,
    FakePlane,
    Served,
    hash_of,
    release_headers,
    snapshot_headers,
)


def sync_of(state: State, url: str | None = None, poll: float = 5.0) -> ReleaseSync:
    identity = state.identity()
    client = ControlPlaneClient(url or identity.control_plane, state.secret(), timeout=2)
    sync = ReleaseSync(state, identity, client, poll=poll)
    sync.load_stored()
    return sync


def serve(plane: FakePlane, bundle: bytes, number: int, **signing: object) -> None:
    release_hash = str(signing.pop("hash")) if "hash" in signing else hash_of(bundle)
    headers = release_headers(number, release_hash, **signing)  # type: ignore[arg-type]
    plane.release = Served(bundle, headers)


def snapshot(version: int, spent: tuple[str, ...] = (), merchant: int = MERCHANT,
             key: bytes = COUPON_KEYS[0]) -> bytes:
    state = RedemptionState(program="corner-market", issued={},
                            spent=sorted(code_hash(key, c) for c in spent),
                            spent_sets=[], spent_by_customer={})
    return snapshot_body(merchant, version, state)


@pytest.fixture
def running(state: State, plane: FakePlane, bundles: tuple[bytes, bytes]) -> ReleaseSync:
    """A PoP running release 5 (the first bundle)."""
    serve(plane, bundles[0], 5)
    sync = sync_of(state)
    sync.poll_once()
    live = sync.current()
    assert live is not None and live.number == 5
    return sync


def refused(sync: ReleaseSync, state: State, plane: FakePlane, match: str) -> None:
    before = sync.current()
    sync.poll_once()
    assert sync.current() is before  # the last good release keeps serving
    assert match in sync.status()["problems"]["release"]
    stored = state.release()
    assert stored is not None and stored.number == 5
    assert sync_of(state).current().number == 5  # type: ignore[union-attr]


def test_the_first_release_is_taken_and_persisted(running: ReleaseSync, state: State,
                                                  plane: FakePlane,
                                                  bundles: tuple[bytes, bytes]) -> None:
    live = running.current()
    assert live is not None and live.release.hash == hash_of(bundles[0])
    assert live.redemptions is None
    stored = state.release()
    assert stored is not None and (stored.number, stored.bundle) == (5, bundles[0])
    assert running.status()["release"] == {"number": 5, "hash": hash_of(bundles[0])}
    assert running.status()["problems"] == {}
    running.poll_once()  # unchanged: the PoP asks with its ETag and gets a 304
    method, path, headers, _ = plane.requests[-2]
    assert (method, path) == ("GET", "/v1/pops/9/release")
    assert headers["If-None-Match"] == f'"{hash_of(bundles[0])}"'
    assert running.current() is live


def test_a_higher_release_is_swapped_in(running: ReleaseSync, state: State, plane: FakePlane,
                                        bundles: tuple[bytes, bytes]) -> None:
    old = running.current()
    serve(plane, bundles[1], 6)
    running.poll_once()
    live = running.current()
    assert live is not None and live.number == 6 and live.release.hash == hash_of(bundles[1])
    assert old is not None and old.number == 5  # what a request in flight holds is unchanged
    assert state.release().number == 6  # type: ignore[union-attr]
    assert len(list(state.path.glob("*.bundle"))) == 1


def test_a_rollback_is_the_same_bundle_under_a_higher_number(
        running: ReleaseSync, plane: FakePlane, bundles: tuple[bytes, bytes]) -> None:
    old = running.current()
    serve(plane, bundles[0], 7)
    plane.release.headers["ETag"] = '"other"'  # type: ignore[union-attr]
    running.poll_once()
    live = running.current()
    assert live is not None and old is not None
    assert live.number == 7 and live.release is old.release


def test_a_tampered_bundle_is_refused(running: ReleaseSync, state: State, plane: FakePlane,
                                      bundles: tuple[bytes, bytes]) -> None:
    tampered = bytearray(bundles[1])
    tampered[-10] ^= 1  # inside the last part: its digest no longer matches the manifest
    serve(plane, bytes(tampered), 6, hash=hash_of(bundles[1]))
    refused(running, state, plane, "does not match its manifest")


def test_a_bundle_other_than_the_signed_hash_is_refused(
        running: ReleaseSync, state: State, plane: FakePlane,
        bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 6, hash="sha256:" + "1" * 64)
    refused(running, state, plane, "the signature names sha256:111")


def test_an_unpinned_key_is_refused(running: ReleaseSync, state: State, plane: FakePlane,
                                    bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 6, key=ROGUE_KEY, key_id=OTHER_KEY_ID)
    refused(running, state, plane, "not in the pinned keyring")


def test_a_signature_by_another_key_is_refused(running: ReleaseSync, state: State,
                                               plane: FakePlane,
                                               bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 6, key=ROGUE_KEY)
    refused(running, state, plane, "signature does not verify")


def test_a_signature_for_another_number_or_merchant_is_refused(
        running: ReleaseSync, state: State, plane: FakePlane,
        bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 6)
    plane.release.headers["X-Poprules-Release"] = "8"  # type: ignore[union-attr]
    refused(running, state, plane, "signature does not verify")
    serve(plane, bundles[1], 6, merchant=MERCHANT + 1)
    refused(running, state, plane, "signature does not verify")


def test_a_lower_release_is_refused_even_when_genuine(
        running: ReleaseSync, state: State, plane: FakePlane,
        bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 4)
    refused(running, state, plane, "release 4 is older than release 5")


def test_the_same_number_with_another_hash_is_refused(
        running: ReleaseSync, state: State, plane: FakePlane,
        bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 5)
    refused(running, state, plane, "comes with another hash")


def test_the_same_release_again_is_a_no_op(running: ReleaseSync, state: State,
                                           plane: FakePlane,
                                           bundles: tuple[bytes, bytes]) -> None:
    live = running.current()
    serve(plane, bundles[0], 5)
    plane.release.headers["ETag"] = '"other"'  # type: ignore[union-attr]  # no 304 this time
    written = (state.path / "release.json").stat().st_mtime_ns
    running.poll_once()
    assert running.current() is live and running.status()["problems"] == {}
    assert (state.path / "release.json").stat().st_mtime_ns == written


def test_missing_signature_headers_are_refused(running: ReleaseSync, state: State,
                                               plane: FakePlane,
                                               bundles: tuple[bytes, bytes]) -> None:
    serve(plane, bundles[1], 6)
    del plane.release.headers["X-Poprules-Signature"]  # type: ignore[union-attr]
    refused(running, state, plane, "lacks its signature headers")


def test_it_starts_from_disk_with_the_control_plane_away(
        running: ReleaseSync, state: State, bundles: tuple[bytes, bytes]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    restarted = sync_of(state, dead)
    live = restarted.current()
    assert live is not None and live.number == 5
    assert live.release.hash == hash_of(bundles[0])
    restarted.poll_once()
    assert restarted.current() is live
    assert "unreachable" in restarted.status()["problems"]["control_plane"]


def test_a_5xx_is_an_outage_not_a_refusal(running: ReleaseSync, plane: FakePlane) -> None:
    plane.status = 503
    running.poll_once()
    assert set(running.status()["problems"]) == {"control_plane"}
    plane.status = None
    running.poll_once()
    assert running.status()["problems"] == {}


def test_a_stored_release_tampered_on_disk_is_not_served(
        running: ReleaseSync, state: State, bundles: tuple[bytes, bytes]) -> None:
    stored = state.release()
    assert stored is not None
    state.write_release(StoredRelease(9, stored.hash, stored.key_id, stored.signature,
                                      stored.bundle))
    restarted = sync_of(state)
    assert restarted.current() is None
    assert "signature does not verify" in restarted.status()["problems"]["release"]


def test_no_release_yet_is_not_a_problem(state: State, plane: FakePlane) -> None:
    sync = sync_of(state)
    sync.poll_once()
    assert sync.current() is None and sync.status()["problems"] == {}


def test_the_snapshot_is_verified_read_and_persisted(running: ReleaseSync, state: State,
                                                     plane: FakePlane) -> None:
    body = snapshot(3, spent=("SUMMER-24",))
    plane.snapshot = Served(body, snapshot_headers(body, 3))
    running.poll_once()
    live = running.current()
    assert live is not None and live.redemptions is not None
    assert live.redemptions.version == 3 and live.redemptions.spent("summer-24")
    assert running.status()["snapshot"] == 3
    restarted = sync_of(state, "http://127.0.0.1:9")
    again = restarted.current()
    assert again is not None and again.redemptions is not None
    assert again.redemptions.version == 3


@pytest.mark.parametrize(("version", "body_version", "signing", "match"), [
    (2, 2, {}, "older than version 3"),
    (3, 3, {}, "comes with other content"),
    (4, 4, {"key": ROGUE_KEY}, "signature does not verify"),
    (4, 4, {"key_id": OTHER_KEY_ID}, "not in the pinned keyring"),
])
def test_bad_snapshots_are_refused(running: ReleaseSync, state: State, plane: FakePlane,
                                   version: int, body_version: int,
                                   signing: dict[str, object], match: str) -> None:
    good = snapshot(3, spent=("SUMMER-24",))
    plane.snapshot = Served(good, snapshot_headers(good, 3))
    running.poll_once()
    before = running.current()
    bad = snapshot(body_version)
    plane.snapshot = Served(bad, snapshot_headers(bad, version, **signing))  # type: ignore[arg-type]
    running.poll_once()
    assert running.current() is before
    assert match in running.status()["problems"]["snapshot"]
    assert state.snapshot().body == good  # type: ignore[union-attr]


def test_a_snapshot_of_another_merchant_is_refused(running: ReleaseSync,
                                                   plane: FakePlane) -> None:
    body = snapshot(3, merchant=MERCHANT + 1)
    plane.snapshot = Served(body, snapshot_headers(body, 3))
    running.poll_once()
    assert "merchant 5's" in running.status()["problems"]["snapshot"]
    assert running.current().redemptions is None  # type: ignore[union-attr]


def test_the_snapshot_is_read_again_for_a_new_release(
        running: ReleaseSync, plane: FakePlane, bundles: tuple[bytes, bytes]) -> None:
    body = snapshot(3, spent=("SUMMER-24",), key=COUPON_KEYS[1])
    plane.snapshot = Served(body, snapshot_headers(body, 3))
    running.poll_once()
    first = running.current()
    assert first is not None and first.redemptions is not None
    assert not first.redemptions.spent("summer-24")  # hashed with the second bundle's key
    serve(plane, bundles[1], 6)
    running.poll_once()
    live = running.current()
    assert live is not None and live.redemptions is not None
    assert live.redemptions.release_hash == live.release.hash == hash_of(bundles[1])
    assert live.redemptions.spent("summer-24")


def test_the_thread_polls_until_stopped(state: State, plane: FakePlane,
                                        bundles: tuple[bytes, bytes]) -> None:
    sync = sync_of(state, poll=0.05)
    sync.start()
    try:
        serve(plane, bundles[0], 1)
        deadline = time.monotonic() + 10
        while sync.current() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        serve(plane, bundles[1], 2)
        while sync.current().number != 2:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        sync.stop()
    count = len(plane.requests)
    time.sleep(0.2)
    assert len(plane.requests) == count
    assert state.release().number == 2  # type: ignore[union-attr]
