"""The signing keyring: made on first start with owner-only files, rotated with old keys
still verifying, published at /v1/keys, or given by the operator."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey as PrivateKey
from sqlalchemy import select

from control_plane import signing
from control_plane.keyring import KeyringError, key_id_of
from control_plane.storage.models import AuditEvent, SigningKey
from poprules.cli import main
from tests.control_plane.conftest import Plane, start_app

RELEASE = "sha256:" + "ab" * 32
OTHER_RELEASE = "sha256:" + "cd" * 32


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _keyring(plane: Plane) -> dict[str, object]:
    response = plane.call("GET", "/v1/keys")
    assert response.status_code == 200
    body: dict[str, object] = response.get_json()
    return body


def test_first_start_makes_an_owner_only_key(plane: Plane, tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    files = sorted(key_dir.glob("*.key"))
    assert len(files) == 1 and _mode(key_dir) == 0o700 and _mode(files[0]) == 0o600
    private = PrivateKey(bytes.fromhex(files[0].read_text()))
    public = bytes(private.verify_key)
    key_id = hashlib.sha256(public).hexdigest()[:16]
    assert files[0].name == f"{key_id}.key"
    keyring = _keyring(plane)
    assert keyring["current"] == key_id and keyring["algorithm"] == "ed25519"
    assert keyring["keys"] == [{"key_id": key_id, "public_key": public.hex(), "current": True,
                                "created_at": keyring["keys"][0]["created_at"]}]  # type: ignore[index]


def test_a_restart_keeps_the_key(plane: Plane, migrated: str, tmp_path: Path) -> None:
    again = start_app(migrated, tmp_path / "keys")
    try:
        assert Plane(again).call("GET", "/v1/keys").get_json() == _keyring(plane)
    finally:
        again.extensions["poprules"].db.dispose()
    assert len(list((tmp_path / "keys").glob("*.key"))) == 1


def test_keyring_answers_304_when_unchanged(plane: Plane) -> None:
    first = plane.call("GET", "/v1/keys")
    etag = first.headers["ETag"]
    assert plane.call("GET", "/v1/keys", headers={"If-None-Match": etag}).status_code == 304


def test_sign_and_verify(plane: Plane) -> None:
    with plane.app.app_context():
        signed = signing.sign(7, 3, RELEASE)
        assert signed["key_id"] == _keyring(plane)["current"]
        assert len(bytes.fromhex(signed["signature"])) == 64
        assert signing.verify(7, 3, RELEASE, signed)
        assert not signing.verify(7, 3, OTHER_RELEASE, signed)
        assert not signing.verify(7, 4, RELEASE, signed)  # an old release under a new number
        assert not signing.verify(8, 3, RELEASE, signed)  # another merchant's
        assert not signing.verify(7, 3, RELEASE, {**signed, "signature": "00" * 64})
        assert not signing.verify(7, 3, RELEASE, {**signed, "signature": "not hex"})
        assert not signing.verify(7, 3, RELEASE, {**signed, "key_id": "0" * 16})
        with pytest.raises(ValueError, match="release hash"):
            signing.sign(7, 3, "sha256:ABC")
        with pytest.raises(ValueError, match="whole numbers"):
            signing.sign(7, 0, RELEASE)
    # the bytes a PoP checks: the context prefix, merchant, number and hash, nothing else
    key = _keyring(plane)["keys"][0]  # type: ignore[index]
    assert signing.verify_with(key["public_key"], 7, 3, RELEASE, signed["signature"])
    bare = PrivateKey(bytes.fromhex(next(plane.state.keyring.key_dir.glob("*.key")).read_text()))
    assert bare.sign(b"poprules-release/1\n7\n3\n" + RELEASE.encode()).signature.hex() == \
        signed["signature"]
    unprefixed = bare.sign(RELEASE.encode()).signature.hex()
    assert not signing.verify_with(key["public_key"], 7, 3, RELEASE, unprefixed)


def _cli(database: str, key_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["cp", *args], env={
        "DATABASE_URL": database, "POPRULES_KEY_DIR": str(key_dir)})
    return result.exit_code, result.output


def test_rotation_keeps_old_signatures_verifiable(plane: Plane, migrated: str,
                                                  tmp_path: Path) -> None:
    old = _keyring(plane)["current"]
    with plane.app.app_context():
        before = signing.sign(1, 1, RELEASE)
    code, output = _cli(migrated, tmp_path / "keys", "rotate-key")
    assert code == 0, output
    keyring = _keyring(plane)
    new = keyring["current"]
    assert new != old and output.strip() == f"signing key: {old} -> {new}"
    assert [(k["key_id"], k["current"]) for k in keyring["keys"]] == \
        [(old, False), (new, True)]  # type: ignore[union-attr]
    assert _mode(tmp_path / "keys" / f"{new}.key") == 0o600
    # the running app signs with the new key at once; the old signature still verifies
    with plane.app.app_context():
        after = signing.sign(1, 1, RELEASE)
        assert after["key_id"] == new
        assert signing.verify(1, 1, RELEASE, before) and signing.verify(1, 1, RELEASE, after)
    with plane.state.db.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.kind.like("key.%"))
                                 .order_by(AuditEvent.id)).all()
        assert [(e.kind, e.actor, e.merchant_id, e.details) for e in events] == [
            ("key.created", "operator", None, {"key_id": old, "source": "generated"}),
            ("key.rotated", "operator", None,
             {"key_id": new, "previous_key_id": old, "source": "generated"}),
        ]


def test_only_one_key_is_ever_current(plane: Plane) -> None:
    from sqlalchemy.exc import IntegrityError

    with plane.state.db.session() as session:
        session.add(SigningKey(key_id="f" * 16, public_key="00" * 32, is_current=True))
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_missing_private_key_stops_the_start(plane: Plane, migrated: str,
                                                tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="is not in"):
        start_app(migrated, tmp_path / "elsewhere")


def test_an_exposed_key_file_stops_the_start(plane: Plane, migrated: str,
                                             tmp_path: Path) -> None:
    key_file = next((tmp_path / "keys").glob("*.key"))
    key_file.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        start_app(migrated, tmp_path / "keys")


def test_operator_key(migrated: str, tmp_path: Path) -> None:
    given = tmp_path / "operator.key"
    private = PrivateKey.generate()
    given.write_text(bytes(private).hex())
    given.chmod(0o644)
    with pytest.raises(KeyringError, match="open to other users"):
        start_app(migrated, tmp_path / "keys", POPRULES_SIGNING_KEY=str(given))
    given.chmod(0o600)
    app = start_app(migrated, tmp_path / "keys", POPRULES_SIGNING_KEY=str(given))
    try:
        plane = Plane(app)
        key_id = key_id_of(bytes(private.verify_key))
        assert _keyring(plane)["current"] == key_id
        assert list((tmp_path / "keys").glob("*.key")) == []  # nothing generated
        with app.app_context():
            assert signing.sign(1, 1, RELEASE)["key_id"] == key_id
        refused = CliRunner().invoke(main, ["cp", "rotate-key"], env={
            "DATABASE_URL": migrated, "POPRULES_SIGNING_KEY": str(given),
            "POPRULES_KEY_DIR": str(tmp_path / "keys")})
        assert refused.exit_code == 2 and "point it at a new key file" in refused.output
    finally:
        app.extensions["poprules"].db.dispose()


def test_operator_key_replaces_a_generated_one(plane: Plane, migrated: str,
                                               tmp_path: Path) -> None:
    generated = _keyring(plane)["current"]
    given = tmp_path / "operator.key"
    given.write_text("garbage")
    given.chmod(0o600)
    with pytest.raises(KeyringError, match="64 hex digits"):
        start_app(migrated, tmp_path / "keys", POPRULES_SIGNING_KEY=str(given))
    private = PrivateKey.generate()
    given.write_text(bytes(private).hex() + "\n")
    app = start_app(migrated, tmp_path / "keys", POPRULES_SIGNING_KEY=str(given))
    app.extensions["poprules"].db.dispose()
    keyring = _keyring(plane)
    assert keyring["current"] == key_id_of(bytes(private.verify_key))
    assert [k["key_id"] for k in keyring["keys"]] == [generated, keyring["current"]]  # type: ignore[union-attr]
