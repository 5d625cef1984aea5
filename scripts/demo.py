"""`make demo`: the whole loop on one machine, with real processes over loopback.

1. a control plane (SQLite, gunicorn) is made and started; the corner market is bootstrapped;
2. the example program is published (`poprules publish`) as release 1;
3. a self-hosted PoP enrolls with a one-time token and starts (`poprules pop serve`), pulls
   and verifies the release;
4. a shopper's customer token is issued; the PoP quotes, checks out twice and refunds a line;
5. the receipts reach the control plane (the PoP's uploader), are verified, re-run and booked;
6. the shopper's wallet shows the cashback pending, then available after its vesting time;
7. the demo shop (`/demo` on the PoP) and the merchant console (`/console`) are named; with
   `--keep` (`make demo KEEP=1`) everything stays up for a browser until Ctrl-C;
8. everything stops, and the scratch directory is removed.

The PoP's clock is set to a Saturday morning of the example's season (2026-07-04 10:30 in
Lisbon), so the demo shows the same figures whatever day it runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "corner-market"
POPRULES = str(Path(sys.executable).with_name("poprules"))
SHOP_TIME = datetime(2026, 7, 4, 9, 30, tzinfo=UTC)  # 10:30 in Lisbon, a Saturday
SHOPPER = "loyalty-card-000123"  # known to the control plane only by its keyed hash


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def call(method: str, url: str, body: Any = None, token: str | None = None,
         headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {url}: {error.code} {error.read().decode()[:300]}") from None


def wait_until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, SystemExit):
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise SystemExit(f"gave up waiting for {what}")


@contextmanager
def process(name: str, args: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    """A server for the demo's length; stopped with SIGTERM (its clean stop), killed if it
    does not stop in time."""
    with log.open("w") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        print(f"  stopped {name} (exit {code})")


def step(text: str) -> None:
    print(f"\n== {text}")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="poprules-demo-") as scratch:
        root = Path(scratch)
        cp_port, pop_port = free_port(), free_port()
        cp_url, pop_url = f"http://127.0.0.1:{cp_port}", f"http://127.0.0.1:{pop_port}"
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{root / 'cp' / 'poprules.db'}",
               "POPRULES_KEY_DIR": str(root / "cp" / "keys"), "POPRULES_URL": cp_url}

        step("control plane: bootstrap the corner market and start (SQLite, gunicorn)")
        booted = subprocess.run([POPRULES, "cp", "bootstrap", "--merchant", "Corner Market"],
                                env=env, capture_output=True, text=True, check=True)
        token = booted.stdout.strip().splitlines()[-1]
        merchant = int(booted.stdout.split()[1].rstrip(":"))
        env["POPRULES_TOKEN"] = token
        print(f"  merchant {merchant}; control plane at {cp_url}")
        with process("control plane", [POPRULES, "cp", "serve", "--bind",
                                        f"127.0.0.1:{cp_port}", "--workers", "2"],
                     env, root / "cp.log"):
            wait_until("the control plane", lambda: call("GET", f"{cp_url}/healthz"))
            return run(root, env, cp_url, pop_url, pop_port, merchant, token)


def run(root: Path, env: dict[str, str], cp_url: str, pop_url: str, pop_port: int,
        merchant: int, token: str) -> int:
    base = f"{cp_url}/v1/merchants/{merchant}"
    step("publish the example program (compiled, checked against the interpreter, signed)")
    samples = root / "samples.json"
    samples.write_text(json.dumps([json.loads((EXAMPLE / "request.json").read_text())]))
    subprocess.run([POPRULES, "publish", str(EXAMPLE / "rules.yaml"),
                    str(EXAMPLE / "catalog.json"), "--samples", str(samples)],
                   env=env, check=True)

    step("a PoP for the market stall: enroll with a one-time token, start, pull the release")
    enrollment = call("POST", f"{base}/enrollment-tokens", {"pop": "lisbon-stall"}, token)
    state = root / "pop"
    subprocess.run([POPRULES, "pop", "enroll", "--control-plane", cp_url, "--token",
                    enrollment["token"], "--state", str(state)], env=env, check=True)
    pop_env = {**env, "POPRULES_POP_CLOCK_OFFSET": str(int(SHOP_TIME.timestamp()
                                                          - time.time()))}
    with process("PoP", [POPRULES, "pop", "serve", "--state", str(state), "--bind",
                         f"127.0.0.1:{pop_port}", "--poll", "1"], pop_env, root / "pop.log"):
        health = wait_until("the PoP's release", lambda: call("GET", f"{pop_url}/healthz"))
        print(f"  PoP at {pop_url} serves release {health['release']}")
        shop(base, pop_url, token)
        browse(pop_url, cp_url, token)
    return 0


def browse(pop_url: str, cp_url: str, token: str) -> None:
    """With --keep, leave the stack up for a person to open the shop and the console."""
    step("the demo shop and the merchant console, for a browser")
    print(f"  demo shop (the checkout component on the example program): {pop_url}/demo")
    print(f"  merchant console (sign in with the token {token}): {cp_url}/console")
    if "--keep" not in sys.argv[1:]:
        print("  (`make demo KEEP=1` keeps them running until Ctrl-C)")
        return
    print("  running until Ctrl-C")
    try:
        signal.pause()
    except KeyboardInterrupt:
        print()


def shop(base: str, pop_url: str, token: str) -> None:
    step("a shopper: the merchant's backend issues a customer token (gold tier, 3 orders)")
    issued = call("POST", f"{base.rsplit('/v1/', 1)[0]}/v1/customer-tokens",
                  {"customer": {"tier": "gold", "orders": 3, "tags": ["vip"]},
                   "subject": SHOPPER}, token)
    shopper = {"X-Poprules-Customer": issued["token"]}
    cart = {"lines": [{"sku": "TEE-01", "qty": 2}, {"sku": "MUG-02", "qty": 2},
                      {"sku": "SOCK-3", "qty": 3}],
            "channel": "pos", "fulfillment": "pickup", "coupons": ["summer-24"]}

    step("quote at the PoP")
    quote = call("POST", f"{pop_url}/v1/quote", cart, headers=shopper)
    totals = quote["totals"]
    print(f"  subtotal {totals['subtotal']}, discount {totals['discount']}, payable "
          f"{totals['payable']}, wallet cashback {totals['cashback_wallet']}, points "
          f"{totals['points']}")
    for report in quote["rules"]:
        print(f"    {report['rule']:<16} {report['status']}"
              + (f" {report['amount']}" if "amount" in report else ""))

    step("two checkouts and a refund of the socks of the first (receipts signed by the PoP)")
    first = call("POST", f"{pop_url}/v1/checkout", cart, headers=shopper)
    second = call("POST", f"{pop_url}/v1/checkout",
                  {**cart, "lines": [{"sku": "TEE-01", "qty": 1}], "coupons": []},
                  headers=shopper)
    refund = call("POST", f"{pop_url}/v1/refunds", {"receipt": first["receipt"]["id"],
                                                    "lines": [2]})
    for made in (first, second, refund):
        body = made["receipt"]["body"]
        print(f"  receipt {body['id']} ({body['kind']}), chained to {body['prev'][:12]}…")

    step("the receipts reach the control plane: verified, re-run, booked")
    pop_id = first["receipt"]["body"]["pop"]
    report = wait_until("the receipts to be booked", lambda: _booked(base, pop_id, token, 3))
    print(f"  received {report['received']}, booked {report['booked']}, flagged "
          f"{report['flagged']}, held {report['held']}, gaps {report['gaps']}")

    step("the shopper's wallet: pending now, available after the vesting time")
    for label, at in (("now", SHOP_TIME), ("in 31 days", SHOP_TIME.replace(month=8, day=4))):
        # The shopper's id travels in a body, never in a URL an access log would keep.
        wallet = call("POST", f"{base.rsplit('/v1/', 1)[0]}/v1/wallets/lookup?at="
                      f"{at.strftime('%Y-%m-%dT%H:%M:%SZ')}", {"subject": SHOPPER}, token)
        print(f"  {label}: available {wallet['available']}, pending "
              f"{sum(p['amount'] for p in wallet['pending'])}, points {wallet['points']}")


def _booked(base: str, pop_id: int, token: str, count: int) -> dict[str, Any] | None:
    report: dict[str, Any] = call("GET", f"{base.rsplit('/v1/merchants', 1)[0]}/v1/pops/"
                                  f"{pop_id}/reconciliation", token=token)
    return report if report["booked"] + report["flagged"] + report["held"] >= count else None


if __name__ == "__main__":
    sys.exit(main())
