"""A fake control plane on loopback (werkzeug in a thread) and signed releases to serve."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from edge_worker.host.state import Identity, State
from poprules import api
from poprules.bundle import release_statement
from tests.conftest import DEMO

MERCHANT, POP = 4, 9
KEY_ID, OTHER_KEY_ID = "0123456789abcdef", "fedcba9876543210"
PLANE_KEY = SigningKey(bytes(range(32)))
ROGUE_KEY = SigningKey(bytes(range(1, 33)))
COUPON_KEYS = (b"A" * 32, b"B" * 32)
SECRET = "prp_test"
SNAPSHOT_CONTEXT = b"poprules-redemptions/1\n"


@pytest.fixture(scope="session")
def bundles() -> tuple[bytes, bytes]:
    """Two bundles of the demo program with different hashes (their coupon keys differ)."""
    program = api.load(DEMO / "rules.yaml", DEMO / "catalog.json")
    return api.build(program, key=COUPON_KEYS[0]), api.build(program, key=COUPON_KEYS[1])


def hash_of(bundle: bytes) -> str:
    from poprules.bundle import decode

    return decode(bundle).release_hash


def release_headers(number: int, release_hash: str, *, key: SigningKey = PLANE_KEY,
                    key_id: str = KEY_ID, merchant: int = MERCHANT) -> dict[str, str]:
    signature = key.sign(release_statement(merchant, number, release_hash)).signature.hex()
    return {"ETag": f'"{release_hash}"', "X-Poprules-Release": str(number),
            "X-Poprules-Release-Hash": release_hash, "X-Poprules-Key-Id": key_id,
            "X-Poprules-Signature": signature}


def snapshot_headers(body: bytes, version: int, *, key: SigningKey = PLANE_KEY,
                     key_id: str = KEY_ID) -> dict[str, str]:
    import hashlib

    return {"ETag": f'"sha256:{hashlib.sha256(body).hexdigest()}"',
            "X-Poprules-Snapshot-Version": str(version), "X-Poprules-Key-Id": key_id,
            "X-Poprules-Signature": key.sign(SNAPSHOT_CONTEXT + body).signature.hex()}


@dataclass
class Served:
    body: bytes
    headers: dict[str, str]


@dataclass
class FakePlane:
    """Serves whatever the test sets; records every request."""
    url: str = ""
    release: Served | None = None
    snapshot: Served | None = None
    status: int | None = None  # when set, every answer has this status
    receipts: Callable[[dict[str, Any]], Response] | None = None
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append((request.method, request.path, dict(request.headers),
                              request.get_data()))
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        if self.status is not None:
            return Response(b"{}", status=self.status)
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            return Response(b"{}", status=401)
        served = {f"/v1/pops/{POP}/release": self.release,
                  f"/v1/pops/{POP}/redemptions": self.snapshot}
        if request.path in served:
            item = served[request.path]
            if item is None:
                return Response(b'{"error": {"field": null, "message": "none"}}', status=404)
            if request.if_none_match.contains_weak(item.headers["ETag"].strip('"')):
                return Response(status=304, headers=item.headers)
            return Response(item.body, headers=item.headers)
        if request.path == "/v1/receipts" and self.receipts is not None:
            return self.receipts(json.loads(request.get_data()))
        return Response(b"{}", status=404)


@pytest.fixture
def plane() -> Iterator[FakePlane]:
    fake = FakePlane()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    thread.join()


@pytest.fixture
def state(tmp_path: Path, plane: FakePlane) -> State:
    """An enrolled PoP's directory, pinned to PLANE_KEY, talking to the fake plane."""
    state = State(tmp_path / "pop")
    state.new_key()
    state.write_secret(SECRET)
    state.write_keyring({KEY_ID: PLANE_KEY.verify_key.encode().hex()})
    state.write_identity(Identity(plane.url, MERCHANT, POP, "stall", "default"))
    return state
