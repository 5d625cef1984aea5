"""The state directory: whole-or-nothing writes, a private key nobody else may read, a
release whose bundle and metadata cannot disagree."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from unittest import mock

import pytest

from edge_worker.host.state import (
    Identity,
    State,
    StateError,
    StoredRelease,
    StoredSnapshot,
)

HASH_A, HASH_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_identity_key_secret_round_trip(tmp_path: Path) -> None:
    state = State(tmp_path / "pop")
    assert not state.enrolled()
    key = state.new_key()
    state.write_secret("prp_secret")
    identity = Identity("http://127.0.0.1:8000", 1, 2, "stall", "default")
    state.write_identity(identity)
    assert state.enrolled() and state.identity() == identity
    assert bytes(state.signing_key()) == bytes(key)
    assert state.secret() == "prp_secret"
    assert mode(tmp_path / "pop" / "pop.key") == 0o600
    assert mode(tmp_path / "pop" / "pop.secret") == 0o600
    assert mode(tmp_path / "pop") == 0o700
    with pytest.raises(StateError, match="keeps its key"):
        state.new_key()


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.new_key()
    os.chmod(tmp_path / "pop.key", 0o644)
    with pytest.raises(StateError, match="chmod 600"):
        state.signing_key()


def test_missing_or_broken_files_are_state_errors(tmp_path: Path) -> None:
    state = State(tmp_path)
    with pytest.raises(StateError, match="poprules pop enroll"):
        state.identity()
    (tmp_path / "pop.json").write_text("[1]")
    with pytest.raises(StateError, match="JSON object"):
        state.identity()
    (tmp_path / "keyring.json").write_text('{"k": 1}')
    with pytest.raises(StateError, match="key id"):
        state.keyring()
    assert state.release() is None and state.snapshot() is None


def test_release_and_snapshot_round_trip(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.write_release(StoredRelease(4, HASH_A, "k1", "ab", b"bundle-a"))
    state.write_release(StoredRelease(5, HASH_B, "k1", "cd", b"bundle-b"))
    assert state.release() == StoredRelease(5, HASH_B, "k1", "cd", b"bundle-b")
    # the older bundle is gone, only the one release.json names is left
    assert [p.name for p in tmp_path.glob("*.bundle")] == [f"release-{'b' * 64}.bundle"]
    snapshot = StoredSnapshot(3, "k1", "ef", '{"format":"x","name":"café"}'.encode())
    state.write_snapshot(snapshot)
    assert state.snapshot() == snapshot


def test_a_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.write_release(StoredRelease(4, HASH_A, "k1", "ab", b"bundle-a"))
    with mock.patch("os.replace", side_effect=OSError("disk full")), \
            pytest.raises(OSError, match="disk full"):
        state.write_release(StoredRelease(5, HASH_B, "k1", "cd", b"bundle-b"))
    assert state.release() == StoredRelease(4, HASH_A, "k1", "ab", b"bundle-a")
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_crash_between_bundle_and_metadata_keeps_the_old_release(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.write_release(StoredRelease(4, HASH_A, "k1", "ab", b"bundle-a"))
    real = state.write

    def crash_on_metadata(name: str, data: bytes, *, mode: int = 0o644) -> None:
        if name == "release.json":
            raise KeyboardInterrupt  # the process dies here
        real(name, data, mode=mode)

    with mock.patch.object(state, "write", crash_on_metadata), \
            pytest.raises(KeyboardInterrupt):
        state.write_release(StoredRelease(5, HASH_B, "k1", "cd", b"bundle-b"))
    assert State(tmp_path).release() == StoredRelease(4, HASH_A, "k1", "ab", b"bundle-a")


def test_a_bundle_outside_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "release.json").write_text(
        '{"number": 1, "hash": "h", "key_id": "k", "signature": "s", "bundle": "../x"}')
    with pytest.raises(StateError, match="in the directory"):
        State(tmp_path).release()
