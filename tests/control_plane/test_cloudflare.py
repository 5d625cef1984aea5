"""The release deployer against a fake of the four Cloudflare endpoints it uses: a real HTTP
server on loopback that keeps versions and deployments as Cloudflare does and records every
request, so the tests check what the deployer sends (paths, token, multipart parts and their
content types, annotations, percentages), not only what it concludes."""

from __future__ import annotations

import json
import threading
import tomllib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from control_plane import deployer
from control_plane.api.cloudflare import BUILDER
from control_plane.cloudflare import CloudflareApi, CloudflareError, message_of
from control_plane.storage.models import AuditEvent, Release
from tests.conftest import ROOT
from tests.control_plane.conftest import Plane, error_of
from tests.control_plane.test_versions import draft, upload

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "cf-test-token-not-a-secret"
PREFIX = "/client/v4"

WRANGLER_TOML = b"""\
name = "poprules-1"
main = "src/entry.py"
compatibility_date = "2026-01-15"
compatibility_flags = ["python_workers"]

[vars]
POPRULES_MERCHANT = "1"
LIMITS = { max_lines = 200 }

[[queues.producers]]
queue = "poprules-receipts"
binding = "RECEIPTS"

[observability]
enabled = true
"""
WASM = b"\x00asm\x01\x00\x00\x00" + bytes(range(256))


def worker_dir(release: Release) -> dict[str, bytes]:
    """A Worker directory as the build writes one: the entry and glue under src/, vendored
    packages beside it, the release's bundle as data, and files that are not uploaded."""
    return {"wrangler.toml": WRANGLER_TOML,
            "src/entry.py": b"from workers import WorkerEntrypoint\n",
            "src/rules.mjs": b'import wasm from "./rules.wasm";\nexport default wasm;\n',
            "src/rules.wasm": WASM,
            "src/release/bundle.bin": release.bundle,
            "python_modules/msgpack/__init__.py": b"# vendored\n",
            "README.md": b"not uploaded\n"}


@dataclass
class Recorded:
    method: str
    path: str  # under the API's base URL
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def parts(self) -> list[EmailMessage]:
        """The multipart body's parts, read by the standard library's own MIME parser."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        assert isinstance(message, EmailMessage) and message.is_multipart()
        return list(message.iter_parts())  # type: ignore[arg-type]


@dataclass
class Script:
    versions: list[dict[str, Any]] = field(default_factory=list)  # newest first
    deployments: list[dict[str, Any]] = field(default_factory=list)  # live first


class FakeCloudflare:
    """Cloudflare's versions and deployments endpoints for the Workers that `seed` made."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.scripts: dict[str, Script] = {}
        self._failures: list[tuple[str, int, dict[str, Any], dict[str, str]]] = []
        self._lock = threading.Lock()
        self._ids = 0
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}{PREFIX}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def configure(self, app: Flask) -> None:
        app.config.update({deployer.ACCOUNT_ID: ACCOUNT, deployer.API_TOKEN: TOKEN,
                           deployer.SCRIPT: "poprules-{merchant}", deployer.API_URL: self.url,
                           BUILDER: worker_dir})

    def api(self, script: str = "poprules-1", **kwargs: Any) -> CloudflareApi:
        return CloudflareApi(ACCOUNT, TOKEN, self.url, script=script, **kwargs)

    def seed(self, script: str, tag: str | None = None) -> str:
        """The Worker as the operator's first `wrangler deploy` leaves it: one version, serving
        all the traffic. Its id."""
        state = self.scripts.setdefault(script, Script())
        version = self._version(state, {"workers/tag": tag} if tag else {}, "entry.py", {})
        state.deployments.insert(0, self._deployment([(version["id"], 100)], None))
        return str(version["id"])

    def fail(self, where: str, status: int, code: int, message: str,
             headers: Mapping[str, str] | None = None, times: int = 1) -> None:
        """Answer the next `times` requests to `where` ("POST versions", ...) with an error."""
        answer = {"success": False, "errors": [{"code": code, "message": message}],
                  "messages": [], "result": None}
        self._failures += [(where, status, answer, dict(headers or {}))] * times

    def calls(self) -> list[str]:
        return [f"{r.method} {r.path.rpartition('/')[2]}" for r in self.requests]

    def live(self, script: str = "poprules-1") -> list[tuple[str, float]]:
        deployment = self.scripts[script].deployments[0]
        return [(v["version_id"], v["percentage"]) for v in deployment["versions"]]

    def tag(self, version_id: str, script: str = "poprules-1") -> str | None:
        (version,) = [v for v in self.scripts[script].versions if v["id"] == version_id]
        tag: str | None = version["annotations"].get("workers/tag")
        return tag

    # -- the server --

    def _next_id(self) -> str:
        self._ids += 1
        return str(uuid.UUID(int=self._ids))

    def _version(self, state: Script, annotations: dict[str, Any], main: str,
                 modules: dict[str, tuple[str, bytes]]) -> dict[str, Any]:
        version = {"id": self._next_id(), "number": len(state.versions) + 1,
                   "annotations": annotations, "metadata": {"source": "api"},
                   "main_module": main, "modules": modules}
        state.versions.insert(0, version)
        return version

    def _deployment(self, split: list[tuple[str, float]], message: str | None) -> dict[str, Any]:
        return {"id": self._next_id(), "strategy": "percentage", "source": "api",
                "versions": [{"version_id": vid, "percentage": share} for vid, share in split],
                "annotations": {"workers/message": message} if message else {}}

    def _wsgi(self, environ: WSGIEnvironment,
              start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        with self._lock:
            recorded = Recorded(request.method, request.path.removeprefix(PREFIX),
                                dict(request.args), dict(request.headers), request.get_data())
            self.requests.append(recorded)
            status, body = self._answer(recorded)
        headers = body.pop("_headers", {})
        response = Response(json.dumps(body), status, headers=headers,
                            content_type="application/json")
        return response(environ, start_response)

    def _answer(self, request: Recorded) -> tuple[int, dict[str, Any]]:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, 10000, "Authentication error")
        parts = request.path.strip("/").split("/")
        if len(parts) != 6 or parts[:3] != ["accounts", ACCOUNT, "workers"] \
                or parts[3] != "scripts" or parts[5] not in ("versions", "deployments"):
            return _error(404, 7003, "Could not route to " + request.path)
        where = f"{request.method} {parts[5]}"
        for index, (target, status, answer, headers) in enumerate(self._failures):
            if target == where:
                del self._failures[index]
                return status, {**answer, "_headers": headers}
        state = self.scripts.get(parts[4])
        if state is None:
            return _error(404, 10007, "This Worker does not exist on your account.")
        if where == "GET versions":
            per_page = int(request.query.get("per_page", "10"))
            return _ok({"items": [{k: v[k] for k in ("id", "number", "annotations", "metadata")}
                                  for v in state.versions[:per_page]]})
        if where == "GET deployments":
            return _ok({"deployments": state.deployments})
        if where == "POST versions":
            return self._upload(state, request)
        if where == "POST deployments":
            return self._deploy(state, request.json())
        return _error(405, 10405, "Method not allowed")

    def _upload(self, state: Script, request: Recorded) -> tuple[int, dict[str, Any]]:
        parts = {part.get_param("name", header="content-disposition"): part
                 for part in request.parts()}
        metadata_part = parts.pop("metadata", None)
        if metadata_part is None or metadata_part.get_content_type() != "application/json":
            return _error(400, 10021, "metadata part missing")
        metadata = json.loads(metadata_part.get_payload(decode=True))  # type: ignore[arg-type]
        if metadata.get("main_module") not in parts:
            return _error(400, 10021, "main_module does not name a part")
        modules = {str(name): (part.get_content_type(), part.get_payload(decode=True))
                   for name, part in parts.items()}
        version = self._version(state, metadata.get("annotations", {}), metadata["main_module"],
                                modules)  # type: ignore[arg-type]
        return _ok({"id": version["id"], "number": version["number"], "resources": {}})

    def _deploy(self, state: Script, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        split = [(v["version_id"], v["percentage"]) for v in body.get("versions", [])]
        known = {v["id"] for v in state.versions}
        if body.get("strategy") != "percentage" or not 1 <= len(split) <= 2 \
                or sum(share for _, share in split) != 100 \
                or any(vid not in known for vid, _ in split):
            return _error(400, 10215, "invalid deployment")
        deployment = self._deployment(split, body.get("annotations", {}).get("workers/message"))
        state.deployments.insert(0, deployment)
        return _ok(deployment)


def _ok(result: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"success": True, "errors": [], "messages": [], "result": result}


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"success": False, "errors": [{"code": code, "message": message}],
                    "messages": [], "result": None}


@pytest.fixture
def cloudflare() -> Iterator[FakeCloudflare]:
    with FakeCloudflare() as fake:
        yield fake


@dataclass
class Shop:
    plane: Plane
    merchant: int
    token: str
    fake: FakeCloudflare
    operator_version: str  # what the operator's `wrangler deploy` left serving

    def path(self, number: int, step: str = "") -> str:
        return f"/v1/merchants/{self.merchant}/releases/{number}/cloudflare{step}"

    def call(self, number: int, step: str = "", body: Any = None) -> Any:
        json_body = body if body is not None or step else {}
        return self.plane.call("POST", self.path(number, step), self.token, json=json_body)

    def publish(self, group: str = "*", version: int = 1) -> dict[str, Any]:
        response = self.plane.call("POST", f"/v1/merchants/{self.merchant}/releases", self.token,
                                   json={"version": version, "group": group})
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.plane.state.db.session() as session:
            rows = session.scalars(select(AuditEvent).where(AuditEvent.kind.like("cloudflare.%"))
                                   .order_by(AuditEvent.id))
            return [(row.kind, row.details) for row in rows]


@pytest.fixture
def shop(plane: Plane, cloudflare: FakeCloudflare) -> Shop:
    account = plane.merchant("corner")
    assert upload(plane, account.merchant_id, account.token, draft()).status_code == 201
    cloudflare.configure(plane.app)
    operator = cloudflare.seed(f"poprules-{account.merchant_id}")
    return Shop(plane, account.merchant_id, account.token, cloudflare, operator)


def test_canary_promote_rollback_send_exactly_these_requests(shop: Shop) -> None:
    fake, script = shop.fake, f"poprules-{shop.merchant}"
    release = shop.publish()  # to every PoP: the Worker too
    base = f"/accounts/{ACCOUNT}/workers/scripts/{script}"

    canary = shop.call(1, body={"percent": 10})
    assert canary.status_code == 200, canary.get_json()
    answer = canary.get_json()
    version = answer["version_id"]
    assert answer == {"script": script, "release": 1, "version_id": version, "uploaded": True,
                      "changed": True, "deployment": {
                          "id": answer["deployment"]["id"], "versions": [
                              {"version_id": version, "percentage": 10, "tag": "release-1"},
                              {"version_id": shop.operator_version, "percentage": 90,
                               "tag": None}]}}
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", f"{base}/versions"), ("GET", f"{base}/deployments"),
        ("POST", f"{base}/versions"), ("POST", f"{base}/deployments")]
    assert {r.headers["Authorization"] for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert fake.requests[0].query == {"page": "1", "per_page": "100"}

    uploaded = fake.requests[2]
    assert uploaded.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = uploaded.parts()
    assert parts[0].get_param("name", header="content-disposition") == "metadata"
    assert parts[0].get_filename() is None
    assert parts[0].get_content_type() == "application/json"
    metadata = json.loads(parts[0].get_payload(decode=True))  # type: ignore[arg-type]
    message = f"corner-market release 1 {release['hash']}"
    assert metadata == {
        "main_module": "entry.py", "compatibility_date": "2026-01-15",
        "compatibility_flags": ["python_workers"],
        "bindings": [{"type": "plain_text", "name": "POPRULES_MERCHANT", "text": "1"},
                     {"type": "json", "name": "LIMITS", "json": {"max_lines": 200}},
                     {"type": "queue", "name": "RECEIPTS", "queue_name": "poprules-receipts"}],
        "keep_bindings": ["secret_text", "secret_key"],
        "annotations": {"workers/tag": "release-1", "workers/message": message_of(message)}}
    assert metadata["annotations"]["workers/message"].endswith(release["hash"])
    modules = {part.get_param("name", header="content-disposition"):
               (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
               for part in parts[1:]}
    with shop.plane.state.db.session() as session:
        bundle = session.scalars(select(Release.bundle)).one()
    assert modules == {
        "entry.py": ("entry.py", "text/x-python", b"from workers import WorkerEntrypoint\n"),
        "rules.mjs": ("rules.mjs", "application/javascript+module",
                      b'import wasm from "./rules.wasm";\nexport default wasm;\n'),
        "rules.wasm": ("rules.wasm", "application/wasm", WASM),
        "release/bundle.bin": ("release/bundle.bin", "application/octet-stream", bundle),
        "python_modules/msgpack/__init__.py": ("python_modules/msgpack/__init__.py",
                                               "text/x-python", b"# vendored\n")}
    assert fake.requests[3].headers["Content-Type"] == "application/json"
    assert fake.requests[3].json() == {
        "strategy": "percentage",
        "versions": [{"version_id": version, "percentage": 10},
                     {"version_id": shop.operator_version, "percentage": 90}],
        "annotations": {"workers/message": "corner-market release 1 at 10%"}}

    # More traffic: the split moves, nothing is uploaded again.
    fake.requests.clear()
    wider = shop.call(1, body={"percent": 50}).get_json()
    assert (wider["uploaded"], wider["version_id"]) == (False, version)
    assert fake.calls() == ["GET versions", "GET deployments", "POST deployments"]
    assert fake.live(script) == [(version, 50), (shop.operator_version, 50)]

    fake.requests.clear()
    promoted = shop.call(1, "/promote")
    assert promoted.status_code == 200, promoted.get_json()
    assert fake.calls() == ["GET versions", "GET deployments", "POST deployments"]
    assert fake.requests[2].json() == {
        "strategy": "percentage", "versions": [{"version_id": version, "percentage": 100}],
        "annotations": {"workers/message": "corner-market release 1 promoted"}}
    assert promoted.get_json()["deployment"]["versions"] == [
        {"version_id": version, "percentage": 100, "tag": "release-1"}]

    fake.requests.clear()
    rolled = shop.call(1, "/rollback")
    assert rolled.status_code == 200, rolled.get_json()
    assert rolled.get_json()["version_id"] == shop.operator_version
    assert fake.requests[-1].json() == {
        "strategy": "percentage",
        "versions": [{"version_id": shop.operator_version, "percentage": 100}],
        "annotations": {"workers/message": "corner-market release 1 rolled back"}}
    assert fake.live(script) == [(shop.operator_version, 100)]

    assert [kind for kind, _ in shop.events()] == [
        "cloudflare.uploaded", "cloudflare.deployed", "cloudflare.deployed",
        "cloudflare.promoted", "cloudflare.rolled_back"]
    kinds = dict(shop.events()[:2])
    assert kinds["cloudflare.uploaded"] == {"release": 1, "script": script, "version_id": version,
                                            "hash": release["hash"]}
    assert kinds["cloudflare.deployed"]["percent"] == 10
    assert shop.events()[-1][1]["to_version_id"] == shop.operator_version


def test_one_canary_at_a_time_and_a_canary_rolls_back_to_its_other_side(shop: Shop) -> None:
    fake, script = shop.fake, f"poprules-{shop.merchant}"
    shop.publish("cloudflare")
    assert upload(shop.plane, shop.merchant, shop.token, draft()).status_code == 201
    shop.publish("cloudflare", version=2)
    first = shop.call(1).get_json()["version_id"]  # default: 10%
    assert fake.live(script) == [(first, 10), (shop.operator_version, 90)]

    fake.requests.clear()
    refused = shop.call(2)
    assert refused.status_code == 409
    assert error_of(refused)["message"] == (
        "the Worker is split between other versions (release-1 at 10%, version "
        f"{shop.operator_version} at 90%): promote or roll back that canary first")
    assert "POST versions" not in fake.calls()  # nothing uploaded for a refused step

    assert shop.call(1, "/promote").status_code == 200
    second = shop.call(2, body={"percent": 25}).get_json()["version_id"]
    assert fake.live(script) == [(second, 25), (first, 75)]
    assert fake.tag(second) == "release-2"
    rolled = shop.call(2, "/rollback")
    assert rolled.status_code == 200 and rolled.get_json()["version_id"] == first
    assert fake.live(script) == [(first, 100)]

    again = shop.call(1, "/promote")  # already so: nothing sent, nothing recorded
    assert again.get_json()["changed"] is False
    assert fake.requests[-1].method == "GET"
    assert [k for k, _ in shop.events()].count("cloudflare.promoted") == 1


def test_what_the_deployer_refuses(shop: Shop) -> None:
    fake = shop.fake
    shop.publish("canary")
    refused = shop.call(1)
    assert refused.status_code == 409
    assert error_of(refused)["message"].startswith(
        "release 1 is not rolled out to the 'cloudflare' group nor to every PoP (it is rolled "
        "out to: canary); roll it out first")
    assert fake.requests == []  # refused before Cloudflare is asked anything

    for step in ("/promote", "/rollback"):
        response = shop.call(1, step)
        assert response.status_code == 409
        assert error_of(response)["message"] == (
            f"release 1 is not deployed on the Worker (it runs version {shop.operator_version} "
            "at 100%); deploy it first: POST .../releases/1/cloudflare")

    assert shop.plane.call("POST", f"/v1/merchants/{shop.merchant}/releases/1/rollout",
                           shop.token, json={"group": "cloudflare"}).status_code == 200
    assert shop.call(1, body={"percent": 100}).status_code == 200
    repeated = shop.call(1, body={"percent": 30})
    assert repeated.status_code == 409
    assert "serves all of the Worker's traffic already" in error_of(repeated)["message"]

    for body, field_name in (({"percent": 0}, "percent"), ({"percent": 101}, "percent"),
                             ({"percent": "10"}, "percent"), ({"percent": 10.0}, "percent"),
                             ({"share": 10}, "share")):
        invalid = shop.call(1, body=body)
        assert (invalid.status_code, error_of(invalid)["field"]) == (422, field_name), body
    missing = shop.call(9)
    assert (missing.status_code, error_of(missing)["field"]) == (404, "number")


def test_nothing_to_roll_back_to(plane: Plane, cloudflare: FakeCloudflare) -> None:
    account = plane.merchant("corner")
    assert upload(plane, account.merchant_id, account.token, draft()).status_code == 201
    assert plane.call("POST", f"/v1/merchants/{account.merchant_id}/releases", account.token,
                      json={"version": 1}).status_code == 201
    cloudflare.configure(plane.app)
    cloudflare.scripts[f"poprules-{account.merchant_id}"] = Script()  # never deployed
    base = f"/v1/merchants/{account.merchant_id}/releases/1/cloudflare"
    first = plane.call("POST", base, account.token, json={"percent": 10})
    assert first.status_code == 200  # no version serves yet: the release gets all of it
    assert first.get_json()["deployment"]["versions"][0]["percentage"] == 100
    refused = plane.call("POST", f"{base}/rollback", account.token)
    assert refused.status_code == 409
    assert error_of(refused)["message"] == \
        "the Worker has no version before release 1's to roll back to"


def test_cloudflare_refusals_surface_with_its_codes(shop: Shop) -> None:
    fake = shop.fake
    shop.publish()
    fake.fail("POST versions", 400, 10021, "Uncaught SyntaxError: invalid syntax at entry.py:1")
    refused = shop.call(1)
    assert refused.status_code == 502
    assert error_of(refused)["message"] == (
        "Cloudflare refused to upload a version of the Worker (HTTP 400): 10021 Uncaught "
        "SyntaxError: invalid syntax at entry.py:1")
    assert shop.events() == []

    # The upload lands, the deployment does not: the upload stays recorded, and the next try
    # deploys the version uploaded instead of uploading another.
    fake.fail("POST deployments", 400, 10215, "invalid deployment")
    assert shop.call(1).status_code == 502
    assert [kind for kind, _ in shop.events()] == ["cloudflare.uploaded"]
    fake.requests.clear()
    retried = shop.call(1)
    assert retried.status_code == 200 and retried.get_json()["uploaded"] is False
    assert fake.calls() == ["GET versions", "GET deployments", "POST deployments"]

    shop.plane.app.config[deployer.API_TOKEN] = "wrong"
    fake.requests.clear()
    unauthorized = shop.call(1, "/promote")
    assert unauthorized.status_code == 502
    assert error_of(unauthorized)["message"] == \
        "Cloudflare refused to list the Worker's versions (HTTP 401): 10000 Authentication error"
    assert len(fake.requests) == 1  # a 401 is not retried


def test_a_missing_setting_is_named(plane: Plane, cloudflare: FakeCloudflare) -> None:
    account = plane.merchant("corner")
    assert upload(plane, account.merchant_id, account.token, draft()).status_code == 201
    assert plane.call("POST", f"/v1/merchants/{account.merchant_id}/releases", account.token,
                      json={"version": 1}).status_code == 201
    path = f"/v1/merchants/{account.merchant_id}/releases/1/cloudflare"
    for step, body in (("", {}), ("/promote", None), ("/rollback", None)):
        response = plane.call("POST", path + step, account.token, json=body)
        assert response.status_code == 409
        assert error_of(response)["message"] == (
            "the Cloudflare deployer is not configured: set CLOUDFLARE_ACCOUNT_ID and "
            "CLOUDFLARE_API_TOKEN and POPRULES_CLOUDFLARE_SCRIPT in the control plane's "
            "environment")
    cloudflare.configure(plane.app)
    plane.app.config[deployer.SCRIPT] = "poprules-worker"
    shared = plane.call("POST", path, account.token, json={})
    assert shared.status_code == 409
    assert "POPRULES_CLOUDFLARE_SCRIPT must contain {merchant}" in error_of(shared)["message"]
    assert cloudflare.requests == []


def test_the_worker_is_built_from_its_pop_state(shop: Shop, tmp_path: Path) -> None:
    """Without a builder given, the release is built as `poprules build --target cloudflare`
    builds it, from the Worker PoP's state directory (here: one that is not there)."""
    shop.publish()
    del shop.plane.app.config[BUILDER]
    unset = shop.call(1)
    assert unset.status_code == 409
    assert error_of(unset)["message"] == ("the Cloudflare deployer is not configured: set "
                                          "POPRULES_CLOUDFLARE_STATE in the control plane's "
                                          "environment")
    shop.plane.app.config[deployer.STATE] = str(tmp_path / "worker-{merchant}")
    broken = shop.call(1)
    assert broken.status_code == 500
    assert error_of(broken)["message"].startswith(
        f"the release's Worker cannot be built: the PoP state {tmp_path / 'worker-1'}: ")
    assert "POST versions" not in shop.fake.calls()


def test_settings_come_from_the_config_then_the_environment() -> None:
    environ = {deployer.ACCOUNT_ID: "env-account", deployer.API_TOKEN: "env-token",
               deployer.SCRIPT: "shop-{merchant}"}
    api = deployer.api_for(7, {deployer.ACCOUNT_ID: "given"}, environ)
    assert (api.account_id, api.script, api.base_url) == \
        ("given", "shop-7", "https://api.cloudflare.com/client/v4")
    assert "env-token" not in repr(api)
    with pytest.raises(deployer.NotConfigured, match="POPRULES_CLOUDFLARE_API: not an http"):
        deployer.api_for(7, {deployer.API_URL: "api.cloudflare.com"}, environ)
    with pytest.raises(deployer.NotConfigured, match="set CLOUDFLARE_API_TOKEN in"):
        deployer.api_for(7, {}, {k: v for k, v in environ.items() if k != deployer.API_TOKEN})


# -- the client on its own: retries, errors --

def test_429_and_5xx_are_retried_with_backoff(cloudflare: FakeCloudflare) -> None:
    cloudflare.seed("poprules-1")
    waits: list[float] = []
    api = cloudflare.api(sleep=waits.append, backoff=0.5)
    cloudflare.fail("GET deployments", 429, 971, "Please wait and consider throttling",
                    headers={"Retry-After": "3"})
    cloudflare.fail("GET deployments", 503, 10013, "An unknown error has occurred")
    (deployment,) = api.deployments()
    assert deployment.split[0][1] == 100
    assert cloudflare.calls() == ["GET deployments"] * 3
    assert waits == [3.0, 1.0]  # Retry-After when longer than the backoff, then doubled

    cloudflare.fail("GET versions", 500, 10013, "An unknown error has occurred", times=4)
    with pytest.raises(CloudflareError) as raised:
        api.versions()
    assert raised.value.status == 500 and raised.value.errors == [
        (10013, "An unknown error has occurred")]
    assert cloudflare.calls().count("GET versions") == 4  # ATTEMPTS, then the error


def test_other_refusals_are_not_retried(cloudflare: FakeCloudflare) -> None:
    cloudflare.seed("poprules-1")
    waits: list[float] = []
    wrong = CloudflareApi(ACCOUNT, "wrong-token", cloudflare.url, script="poprules-1",
                          sleep=waits.append)
    with pytest.raises(CloudflareError, match=r"\(HTTP 401\): 10000 Authentication error"):
        wrong.deployments()
    cloudflare.fail("POST deployments", 403, 10000, "Authentication error")
    with pytest.raises(CloudflareError, match=r"\(HTTP 403\)"):
        cloudflare.api(sleep=waits.append).deploy([("x", 100)], "m")
    with pytest.raises(CloudflareError, match="10007 This Worker does not exist"):
        cloudflare.api("poprules-2", sleep=waits.append).versions()
    assert len(cloudflare.requests) == 3 and waits == []


def test_an_answer_that_is_not_success_surfaces_its_errors(cloudflare: FakeCloudflare) -> None:
    cloudflare.seed("poprules-1")
    cloudflare.fail("GET versions", 200, 10021, "half an answer")
    with pytest.raises(CloudflareError) as raised:
        cloudflare.api().versions()
    assert str(raised.value) == \
        "Cloudflare refused to list the Worker's versions (HTTP 200): 10021 half an answer"


def test_no_answer_at_all(cloudflare: FakeCloudflare) -> None:
    closed = make_server("127.0.0.1", 0, Response("x"))
    port = closed.server_port
    closed.server_close()  # nothing listens there now
    api = CloudflareApi(ACCOUNT, TOKEN, f"http://127.0.0.1:{port}", script="s", timeout=5)
    with pytest.raises(CloudflareError, match=r"Cloudflare refused to list the Worker's "
                       r"deployments \(no answer\): http://127\.0\.0\.1:\d+: .*refused"):
        api.deployments()


def test_long_messages_keep_their_end() -> None:
    text = "a-very-long-program-name-" * 5 + "release 12 sha256:" + "ab" * 32
    kept = message_of(text)
    assert len(kept.encode()) == 100 and kept.endswith("sha256:" + "ab" * 32)
    assert kept.startswith("...") and message_of("short") == "short"
    assert len(message_of("é" * 80).encode()) <= 100


# -- the Worker directory --

def _release() -> Release:
    return Release(number=3, bundle=b"bundle", release_hash="sha256:" + "0" * 64)


def test_the_worker_directory_becomes_modules_and_metadata() -> None:
    files = {**worker_dir(_release()), "src/notes.txt": b"data"}
    modules, metadata = deployer.worker_upload(files)
    assert set(modules) == {"entry.py", "rules.mjs", "rules.wasm", "release/bundle.bin",
                            "notes.txt", "python_modules/msgpack/__init__.py"}
    assert modules["notes.txt"] == (b"data", "application/octet-stream")
    assert metadata["main_module"] == "entry.py"
    flat = {"wrangler.toml": WRANGLER_TOML.replace(b'"src/entry.py"', b'"entry.py"'),
            "entry.py": b"", "python_modules/x.py": b""}
    assert set(deployer.worker_upload(flat)[0]) == {"entry.py", "python_modules/x.py"}


def test_the_projects_wrangler_toml_is_uploadable() -> None:
    config = (ROOT / "wrangler.toml").read_bytes()
    settings = tomllib.loads(config.decode())
    modules, metadata = deployer.worker_upload({"wrangler.toml": config, "src/entry.py": b""})
    assert (set(modules), metadata["main_module"]) == ({"entry.py"}, "entry.py")
    assert metadata["compatibility_flags"] == settings["compatibility_flags"]
    expected = [{"type": "durable_object_namespace", "name": d["name"],
                 "class_name": d["class_name"]}
                for d in settings.get("durable_objects", {}).get("bindings", [])]
    expected += [{"type": "queue", "name": p["binding"], "queue_name": p["queue"]}
                 for p in settings.get("queues", {}).get("producers", [])]
    assert all(binding in metadata["bindings"] for binding in expected) and expected


@pytest.mark.parametrize(("files", "message"), [
    ({"src/entry.py": b""}, "has no wrangler.toml"),
    ({"wrangler.toml": b"main = 'src/entry.py'\n"}, "needs main and compatibility_date"),
    ({"wrangler.toml": b"main = \n"}, "wrangler.toml: "),
    ({"wrangler.toml": WRANGLER_TOML}, r"main \(src/entry.py\) is not in"),
    ({"wrangler.toml": WRANGLER_TOML + b"[[kv_namespaces]]\nbinding = 'K'\nid = 'x'\n",
      "src/entry.py": b""}, "has kv_namespaces, which the deployer does not upload"),
    ({"wrangler.toml": WRANGLER_TOML, "src/entry.py": b"", "../etc/passwd": b""},
     "not a plain relative path"),
])
def test_a_worker_directory_that_cannot_be_uploaded(files: dict[str, bytes],
                                                    message: str) -> None:
    with pytest.raises(deployer.WorkerDirError, match=message):
        deployer.worker_upload(files)
