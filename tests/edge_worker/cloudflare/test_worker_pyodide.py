"""The built Worker runs in real Pyodide (Node) through `Default.fetch`, `ReceiptChain` and
`Default.queue`, and answers byte for byte as the same core does on CPython with wasmtime and
PyNaCl; its receipts, signed by WebCrypto, are booked by the control plane, a replayed batch
books nothing twice, and a queue or control plane that is down loses nothing (issue 7).

One Node process runs every step (start-up costs seconds): worker_driver.py drives the built
directory with stand-ins for what workerd provides, and the control plane listens on a local
port for the queue consumer's POSTs.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey
from sqlalchemy import func, select
from werkzeug.serving import make_server

from control_plane.storage.models import Journal, Receipt
from edge_worker.cloudflare import worker
from edge_worker.core.pop import HttpRequest, PopApp
from edge_worker.engines.wasmtime_engine import WasmtimeEngine
from poprules import receipt
from tests.control_plane.conftest import Plane
from tests.edge_worker.cloudflare.conftest import MemoryStore, Shop
from tests.edge_worker.pyodide.harness import NODE, ROOT, RUNNER, toolchain_problem

DRIVER = Path(__file__).with_name("worker_driver.py")
CART = {"lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 1}],
        "coupons": ["summer-24"], "fulfillment": "pickup"}
DOWN = "http://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
def listening(shop: Shop) -> Iterator[str]:
    """The control plane on a local port, for the consumer's real HTTP POSTs."""
    server = make_server("127.0.0.1", 0, shop.plane.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def run_worker(out: Path, work: Path, steps: dict[str, Any]) -> dict[str, Any]:
    """Run the driver on the built directory; JavaScript Promise Integration (run_sync) is
    behind a flag in Node 20 and 22, as it is not in workerd."""
    problem = toolchain_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    (work / "steps.json").write_text(json.dumps(steps))
    command = [str(NODE), "--experimental-wasm-stack-switching", str(RUNNER), "--no-wheels",
               "--mount", f"{out}:/worker", "--mount", f"{work}:/work", str(DRIVER), "/worker",
               "/work"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    result: dict[str, Any] = json.loads((work / "results.json").read_text())
    return result


def request(method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
    text = None if body is None else body if isinstance(body, str) else json.dumps(body)
    return {"fetch": {"method": method, "path": path, "headers": headers, "body": text}}


def reference(shop: Shop, built: worker.Built, now: int) -> tuple[PopApp, PopApp]:
    """The same core on CPython: wasmtime runs the module, PyNaCl signs and checks tokens
    (the core's defaults); an edge app and a chain app, as the Worker has."""
    engine = WasmtimeEngine(use_cache=False)
    live = worker.load_release(built, lambda: engine.load(built_release_module(built)))

    def make(outbox: Any) -> PopApp:
        return PopApp(merchant_id=built.merchant_id, pop_id=built.pop_id,
                      pop_name=built.pop_name, signer=lambda m: shop.key.sign(m).signature,
                      clock=lambda: now, releases=worker.StaticRelease(live), outbox=outbox)

    return make(worker.NoReceipts()), make(worker.ChainOutbox(MemoryStore()))


def built_release_module(built: worker.Built) -> bytes:
    from poprules.bundle import decode

    return decode(built.bundle).module


def booked(plane: Plane) -> tuple[dict[str, str], int]:
    with plane.state.db.session() as session:
        statuses = {r.receipt_id: r.status for r in session.scalars(select(Receipt))}
        journals = session.scalar(select(func.count()).select_from(Journal)) or 0
    return statuses, journals


def test_the_built_worker_serves_signs_chains_and_delivers_under_pyodide(
        shop: Shop, built: tuple[Path, worker.Built], listening: str, tmp_path: Path) -> None:
    out, data = built
    now = int(time.time())  # customer tokens expire from the control plane's now
    token = shop.customer_token()
    payload, key_id, signature = token.split(".")
    forged = ".".join([payload, key_id, signature[:10] + ("A" if signature[10] != "A" else "B")
                       + signature[11:]])
    pop = data.pop_id
    steps: list[dict[str, Any]] = [
        request("GET", "/healthz"),                                                # 0
        request("GET", "/v1/release"),                                             # 1
        request("POST", "/v1/quote", CART),                                        # 2
        request("POST", "/v1/quote", CART, **{"X-Poprules-Customer": token}),      # 3
        request("POST", "/v1/quote", CART, **{"X-Poprules-Customer": forged}),     # 4
        request("POST", "/v1/quote", {"lines": [{"sku": "NOPE", "qty": 1}]}),      # 5
        request("POST", "/v1/coupons/validate", {"code": "summer-24", "lines": CART["lines"]}),
        request("POST", "/v1/quote", "not json"),                                  # 7
        request("GET", "/v1/quote"),                                               # 8
        request("GET", "/nowhere"),                                                # 9
        request("OPTIONS", "/v1/checkout"),                                        # 10
        request("GET", "/sdk/poprules.js"),                                        # 11
        request("HEAD", "/healthz"),                                               # 12
        {"queue": "fail"},                                                         # 13
        request("POST", "/v1/checkout", CART, **{"X-Poprules-Customer": token}),   # 14
        {"queue": "ok"},                                                           # 15
        {"alarm": True},                                                           # 16
        request("POST", "/v1/checkout", {**CART, "claim": False}),                 # 17
        request("POST", "/v1/refunds", {"receipt": f"{pop}-2", "lines": [0]}),     # 18
        request("POST", "/v1/refunds", {"receipt": f"{pop}-2", "lines": [0]}),     # 19
        {"consume": [0, 1, 2], "control_plane": DOWN, "attempts": 1},              # 20
        {"consume": [0, 1, 2], "control_plane": listening, "attempts": 2},         # 21
        {"consume": [1, 0, 2], "control_plane": listening, "attempts": 1},         # 22
    ]
    env = {"POP_PRIVATE_KEY": shop.seed_hex, "POP_SECRET": shop.pop_secret,
           "CONTROL_PLANE": DOWN}
    ran = run_worker(out, tmp_path, {"env": env, "now_ms": now * 1000 + 250, "steps": steps})
    results = ran["results"]

    # Byte for byte what the same core answers on CPython, in the same order.
    edge, chain = reference(shop, data, now)
    for index, step in enumerate(steps):
        if "fetch" not in step:
            continue
        sent = step["fetch"]
        got = results[index]
        body = base64.b64decode(got["body"])
        where = worker.route(sent["path"], sent["method"])
        if where == worker.SDK:
            expected = worker.sdk_response(sent["method"])
        else:
            app = chain if where == worker.CHAIN else edge
            expected = app.handle(HttpRequest(
                sent["method"], sent["path"], "",
                {k.lower(): v for k, v in sent["headers"].items()},
                (sent["body"] or "").encode()))
        assert got["status"] == expected.status, (index, body)
        assert body == (b"" if sent["method"] == "HEAD" else expected.body), index
        assert got["headers"]["access-control-allow-origin"] == "*", index
    def answer(index: int) -> Any:
        return json.loads(base64.b64decode(results[index]["body"]))

    assert answer(3)["quote_id"] != answer(2)["quote_id"]  # the token's shopper counts
    assert answer(4)["error"]["message"].startswith("bad_signature")
    assert [results[i]["status"] for i in (14, 17, 18, 19)] == [201, 201, 201, 422]

    # The queue refused the first receipt: it was stored, an alarm set, and delivered later.
    assert ran["alarm"] == now * 1000 + 250 + 30_000
    queued = ran["queued"]
    assert [json.loads(m["body"])["seq"] for m in queued] == [1, 2, 3]
    assert json.loads(queued[0]["body"])["customer"] is not None  # from the verified token
    verify = VerifyKey(shop.key.verify_key.encode())
    prev = receipt.GENESIS
    for message in queued:
        body = message["body"].encode()
        verify.verify(receipt.statement(body), bytes.fromhex(message["signature"]))
        assert json.loads(body)["prev"] == prev
        prev = receipt.digest(body)
    stored = ran["stored"]
    assert stored["head"] == f"3 {prev}"
    assert not [key for key in stored if key.startswith(worker.UNSENT)]

    # Control plane down: every message goes again later, none is acknowledged.
    assert results[20]["log"] == [["retry", i, {"delaySeconds": 10}] for i in range(3)]
    # Up: booked, and the batch acknowledged; replayed in another order: nothing twice.
    assert results[21]["log"] == [["ackAll"]]
    assert results[22]["log"] == [["ackAll"]]
    statuses, journals = booked(shop.plane)
    assert statuses == {f"{pop}-1": "booked", f"{pop}-2": "booked", f"{pop}-3": "booked"}
    replayed = shop.plane.call("POST", "/v1/receipts", shop.pop_secret, json={
        "receipts": [queued[0]]})
    assert replayed.get_json()["results"][0]["status"] == "duplicate"
    assert booked(shop.plane) == (statuses, journals)
    print(f"import (release check) {ran['import_ms']:.0f} ms; first quote "
          f"{results[2]['elapsed_ms']:.1f} ms, next {results[3]['elapsed_ms']:.1f} ms")
