"""`poprules pop enroll`, `pin-keys`, `status` and `serve`'s checks, against a real control
plane in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from control_plane.app import create_app
from control_plane.auth import SCOPES
from control_plane.context import ControlPlane
from control_plane.pops import create_enrollment_token
from control_plane.tokens import create_merchant, create_token
from edge_worker.host.state import State
from poprules.cli import main


@dataclass
class Plane:
    url: str
    state: ControlPlane
    merchant_id: int
    token_id: int

    def enrollment(self, pop: str) -> str:
        with self.state.db.session() as session:
            _, secret = create_enrollment_token(session, self.merchant_id, pop, "default",
                                                3600, actor_token_id=self.token_id)
            session.commit()
        return secret

    def keys(self) -> dict[str, str]:
        with self.state.db.session() as session:
            return {k.key_id: k.public_key for k in self.state.keyring.keys(session)}


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plane]:
    for name in ("DATABASE_URL", "POPRULES_KEY_DIR", "POPRULES_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
                      "POPRULES_KEY_DIR": str(tmp_path / "keys")})
    state: ControlPlane = app.extensions["poprules"]
    with state.db.session() as session:
        merchant = create_merchant(session, "corner")
        token, _ = create_token(session, merchant, frozenset(SCOPES), "test",
                                actor_token_id=None)
        session.commit()
        ids = merchant.id, token.id
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Plane(f"http://127.0.0.1:{server.server_port}", state, *ids)
    server.shutdown()
    thread.join()
    state.db.dispose()


def pop(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["pop", *args])
    return result.exit_code, result.output


def test_enroll_writes_the_state_and_pins_the_keyring(plane: Plane, tmp_path: Path) -> None:
    directory = tmp_path / "pop"
    code, output = pop("enroll", "--control-plane", plane.url + "/", "--token",
                       plane.enrollment("stall"), "--state", str(directory))
    assert code == 0, output
    assert "enrolled; 1 signing key(s) pinned" in output
    state = State(directory)
    identity = state.identity()
    assert (identity.control_plane, identity.merchant_id, identity.name, identity.group) == (
        plane.url, plane.merchant_id, "stall", "default")
    assert state.secret().startswith("prp_") and state.keyring() == plane.keys()
    code, output = pop("status", "--state", str(directory))
    assert code == 0, output
    assert json.loads(output) == {
        "pop": identity.pop_id, "name": "stall", "group": "default",
        "merchant": plane.merchant_id, "control_plane": plane.url, "release": None,
        "snapshot": None, "outbox": {"depth": 0, "last_seq": 0}}
    code, output = pop("enroll", "--control-plane", plane.url, "--token", "pre_x",
                       "--state", str(directory))
    assert code == 2 and "enrolled PoP already" in output


def test_a_refused_enrollment_writes_no_identity(plane: Plane, tmp_path: Path) -> None:
    directory = tmp_path / "pop"
    code, output = pop("enroll", "--control-plane", plane.url, "--token", "pre_" + "x" * 43,
                       "--state", str(directory))
    assert code == 2 and "enrollment refused (401)" in output
    assert not State(directory).enrolled()
    key = (directory / "pop.key").read_bytes()
    code, output = pop("enroll", "--control-plane", plane.url, "--token",
                       plane.enrollment("stall"), "--state", str(directory))
    assert code == 0, output
    assert (directory / "pop.key").read_bytes() == key  # the unused key was kept


def test_an_unreachable_control_plane_is_a_message(tmp_path: Path) -> None:
    code, output = pop("enroll", "--control-plane", "http://127.0.0.1:9", "--token", "pre_x",
                       "--state", str(tmp_path / "pop"))
    assert code == 2 and "GET http://127.0.0.1:9/v1/keys: " in output
    assert not (tmp_path / "pop").exists()  # nothing made before the keyring is pinned


def test_pin_keys_adds_a_rotated_key_and_refuses_a_changed_one(plane: Plane,
                                                               tmp_path: Path) -> None:
    directory = tmp_path / "pop"
    assert pop("enroll", "--control-plane", plane.url, "--token", plane.enrollment("stall"),
               "--state", str(directory))[0] == 0
    with plane.state.db.session() as session:
        _, new = plane.state.keyring.rotate(session)
    code, output = pop("pin-keys", "--state", str(directory))
    assert code == 0 and f"pinned 1 new key(s): {new}" in output
    assert State(directory).keyring() == plane.keys() and len(plane.keys()) == 2
    state = State(directory)
    state.write_keyring({**state.keyring(), new: "0" * 64})
    code, output = pop("pin-keys", "--state", str(directory))
    assert code == 2 and f"other public keys for pinned key ids {new}" in output
    assert State(directory).keyring()[new] == "0" * 64


def test_serve_refuses_a_directory_that_is_not_a_pop(tmp_path: Path) -> None:
    code, output = pop("serve", "--state", str(tmp_path))
    assert code == 2 and "poprules pop enroll" in output
