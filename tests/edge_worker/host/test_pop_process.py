"""Real processes over loopback: a control plane (`poprules cp serve`), a PoP enrolled and
served by `poprules pop`. The PoP quotes on the release it pulled, keeps quoting and selling
with the control plane gone, starts again after a SIGKILL on the release and the receipts it
persisted, and drains its queue when the control plane returns: each receipt booked once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from edge_worker.core.checkout import QUOTE_CONTEXT
from poprules import receipt
from tests.conftest import DEMO
from tests.control_plane.test_serve import _free_port

POPRULES = Path(sys.executable).parent / "poprules"
ORDER = {"lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 2},
                   {"sku": "SOCK-3", "qty": 3}],
         "channel": "pos", "fulfillment": "pickup", "coupons": ["summer-24"]}


def call(method: str, url: str, body: Any = None, token: str | None = None,
         timeout: float = 5) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, body = call("GET", url, timeout=2)
            if status == 200:
                return body
        except (urllib.error.URLError, ConnectionError):
            pass
        assert process.poll() is None, process.communicate()[0].decode()
        assert time.monotonic() < deadline, f"{url} did not answer 200 within {seconds} s"
        time.sleep(0.1)


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([str(POPRULES), *args], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> str:
        if sig == signal.SIGKILL:
            os.killpg(process.pid, sig)  # the whole group, master and worker: a power cut
        else:
            process.send_signal(sig)  # gunicorn's master stops its worker
        output = process.communicate(timeout=30)[0].decode()
        self.running.remove(process)
        if sig != signal.SIGKILL:
            assert process.returncode == 0, output
        return output


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    for process in list(started.running):
        started.stop(process, signal.SIGKILL)


def run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([str(POPRULES), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_pop_serves_its_persisted_release_with_the_control_plane_gone(
        tmp_path: Path, processes: Processes) -> None:
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "POPRULES_KEY_DIR", "POPRULES_SIGNING_KEY")}
    cp_env = {**base_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
              "POPRULES_KEY_DIR": str(tmp_path / "keys")}
    cp_port, pop_port = _free_port(), _free_port()
    plane = f"http://127.0.0.1:{cp_port}"
    pop = f"http://127.0.0.1:{pop_port}"
    state = tmp_path / "pop"

    token = run("cp", "bootstrap", "--merchant", "corner", env=cp_env).strip().splitlines()[-1]
    control = processes.start("cp", "serve", "--bind", f"127.0.0.1:{cp_port}", "--workers",
                              "1", env=cp_env)
    wait_for(f"{plane}/healthz", control)
    status, me = call("GET", f"{plane}/v1/whoami", token=token)
    assert status == 200, me
    base = f"{plane}/v1/merchants/{me['merchant_id']}"
    status, version = call("POST", f"{base}/versions", {
        "program": (DEMO / "rules.yaml").read_text(),
        "catalog": (DEMO / "catalog.json").read_text()}, token)
    assert status == 201, version
    status, published = call("POST", f"{base}/releases", {"version": version["number"]}, token)
    assert status == 201, published
    status, enrollment = call("POST", f"{base}/enrollment-tokens", {"pop": "stall"}, token)
    assert status == 201, enrollment

    run("pop", "enroll", "--control-plane", plane, "--token", enrollment["token"],
        "--state", str(state), env=base_env)
    assert oct((state / "pop.key").stat().st_mode & 0o777) == "0o600"
    key = SigningKey((state / "pop.key").read_bytes()).verify_key

    def serve() -> subprocess.Popen[bytes]:
        server = processes.start("pop", "serve", "--state", str(state), "--bind",
                                 f"127.0.0.1:{pop_port}", "--poll", "0.5", "--access-log",
                                 env=base_env)
        assert wait_for(f"{pop}/healthz", server) == {"status": "ok",
                                                      "release": published["number"]}
        return server

    def quote() -> dict[str, Any]:
        status, answer = call("POST", f"{pop}/v1/quote", ORDER)
        assert status == 200 and isinstance(answer, dict), answer
        assert answer["release"]["hash"] == published["hash"]
        signature = bytes.fromhex(answer.pop("signature"))
        key.verify(QUOTE_CONTEXT + receipt.encode(answer), signature)
        return answer

    server = serve()
    first = quote()

    processes.stop(control)  # the control plane goes away: quoting and selling go on
    assert quote()["totals"] == first["totals"]
    for _ in range(2):
        status, sold = call("POST", f"{pop}/v1/checkout", ORDER)
        assert status == 201, sold
    shown = json.loads(run("pop", "status", "--state", str(state), env=base_env))
    assert (shown["outbox"]["last_seq"], shown["outbox"]["depth"]) == (2, 2)

    processes.stop(server, signal.SIGKILL)  # the power goes, with the receipts still queued
    server = serve()
    assert quote()["totals"] == first["totals"]
    status, release = call("GET", f"{pop}/v1/release")
    assert release["release"]["number"] == published["number"]
    shown = json.loads(run("pop", "status", "--state", str(state), env=base_env))
    assert shown["release"] == {"number": published["number"], "hash": published["hash"]}
    assert (shown["outbox"]["last_seq"], shown["outbox"]["depth"]) == (2, 2)  # none lost

    # The control plane comes back: the queue drains, every receipt booked exactly once.
    control = processes.start("cp", "serve", "--bind", f"127.0.0.1:{cp_port}", "--workers",
                              "1", env=cp_env)
    wait_for(f"{plane}/healthz", control)
    deadline = time.monotonic() + 90  # the uploader backs off up to 60 s while it is away
    while json.loads(run("pop", "status", "--state", str(state),
                         env=base_env))["outbox"]["depth"]:
        assert time.monotonic() < deadline, "the outbox did not drain"
        time.sleep(0.5)
    status, report = call("GET", f"{plane}/v1/pops/{shown['pop']}/"
                          "reconciliation", token=token)
    assert status == 200, report
    assert (report["received"], report["booked"], report["gaps"]) == (2, 2, []), report

    output = processes.stop(server)  # SIGTERM: a clean stop
    assert "stopped: uploads, release sync and the outbox" in output, output
    assert "Granian shutdown completed" in output, output
    assert '"POST /v1/quote HTTP/1.1" 200' in output  # --access-log: a line per request
