"""A real control plane (SQLite) with a published, signed release and the Worker's PoP
enrolled, as an operator has them before `poprules build --target cloudflare`.

The ingestion itself is tested on SQLite and PostgreSQL in tests/control_plane; here the
control plane is where the Worker's receipts must be accepted, so one database is enough.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from control_plane.config import KEYS
from control_plane.storage.db import Database
from edge_worker.cloudflare import worker
from edge_worker.cloudflare.build import build_worker
from edge_worker.host.state import Identity, State
from tests.control_plane.conftest import Account, Plane, start_app
from tests.control_plane.test_versions import draft, upload

POP_NAME = "edge"


@dataclass
class Shop:
    """The merchant, its release 1, and the Worker's enrolled PoP."""

    plane: Plane
    account: Account
    pop_id: int
    pop_secret: str
    key: SigningKey
    bundle: Path  # the release's bundle, as downloaded
    release_json: Path  # GET .../releases/1
    state: Path  # the PoP's state directory, as `poprules pop enroll` writes it

    @property
    def seed_hex(self) -> str:
        return bytes(self.key).hex()

    def customer_token(self, **customer: object) -> str:
        made = self.plane.call("POST", "/v1/customer-tokens", self.account.token, json={
            "subject": "alice@example.com",
            "customer": {"tier": "gold", "orders": 3, "tags": ["vip"], **customer}})
        assert made.status_code == 201, made.get_json()
        token: str = made.get_json()["token"]
        return token


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plane:
    for key in KEYS:  # a developer's own settings must never reach a test
        monkeypatch.delenv(key, raising=False)
    url = f"sqlite:///{tmp_path / 'control-plane.db'}"
    database = Database(url)
    database.upgrade()
    database.dispose()
    return Plane(start_app(url, tmp_path / "keys"))


@pytest.fixture
def shop(plane: Plane, tmp_path: Path) -> Shop:
    account = plane.merchant("corner")
    merchant = account.merchant_id
    assert upload(plane, merchant, account.token, draft()).status_code == 201
    published = plane.call("POST", f"/v1/merchants/{merchant}/releases", account.token,
                           json={"version": 1})
    assert published.status_code == 201, published.get_json()
    bundle = plane.call("GET", f"/v1/merchants/{merchant}/releases/1/bundle", account.token)
    assert bundle.status_code == 200
    made = plane.call("POST", f"/v1/merchants/{merchant}/enrollment-tokens", account.token,
                      json={"pop": POP_NAME})
    assert made.status_code == 201, made.get_json()
    key = SigningKey.generate()
    enrolled = plane.call("POST", "/v1/pops/enroll", json={
        "enrollment_token": made.get_json()["token"], "public_key": bytes(key.verify_key).hex()})
    assert enrolled.status_code == 201, enrolled.get_json()
    pop = enrolled.get_json()
    keys = plane.call("GET", "/v1/keys").get_json()["keys"]

    files = tmp_path / "release"
    files.mkdir()
    (files / "release.bundle").write_bytes(bundle.data)
    (files / "release.json").write_text(json.dumps(published.get_json()))
    state = State(tmp_path / "pop-state")
    state.create()
    state.write_identity(Identity("http://control-plane.invalid", merchant, pop["pop_id"],
                                  pop["name"], pop["group"]))
    state.write_keyring({k["key_id"]: k["public_key"] for k in keys})
    return Shop(plane, account, pop["pop_id"], pop["token"], key, files / "release.bundle",
                files / "release.json", state.path)


@pytest.fixture
def built(shop: Shop, tmp_path: Path) -> Iterator[tuple[Path, worker.Built]]:
    """The Worker directory for the shop's release 1."""
    out = tmp_path / "worker"
    yield out, build_worker(bundle=shop.bundle, signature=shop.release_json, state=shop.state,
                            out=out)


class MemoryStore:
    """`worker.Store` as a Durable Object's KV storage behaves: sorted keys, atomic writes."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.fail_writes = False

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def write(self, puts: Mapping[str, str], deletes: Sequence[str] = ()) -> None:
        if self.fail_writes:
            raise OSError("storage unavailable")
        self.data.update(puts)
        for key in deletes:
            self.data.pop(key, None)

    def scan(self, prefix: str, limit: int) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))[:limit]
