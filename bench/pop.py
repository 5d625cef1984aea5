"""Issue 6's figures: a PoP and a control plane as real processes over loopback.

1. Quotes: a control plane (`poprules cp serve`, SQLite, 2 workers) publishes the benchmark's
   100-rule program; a PoP enrolled for it (`poprules pop serve --threads 2`) pulls the release
   and answers `POST /v1/quote` for a separate load process (`python -m bench.loadgen`: 4
   client threads, keep-alive connections, 1 s warm-up then 5 s counted), which cycles through
   the benchmark's 50 carts of 20 lines. Reported: quotes/s, latency percentiles and errors
   (any answer but 200).
2. Receipts: 500 sale receipts, built in this process with the PoP core's own builders
   (`edge_worker.core.checkout.evaluate` + `sale_body`) and signed with the key of a second PoP
   enrolled for this alone (its chain starts at seq 1 from GENESIS), are posted to the control
   plane's `POST /v1/receipts` in batches of 100 with that PoP's secret, one batch after the
   other as a PoP's uploader sends them. Only the posts are timed; each receipt must be booked.

Ingestion runs before the quoting PoP starts, so neither measurement shares the machine with
the other. The PoP's clock is set to the instant the program's schedules are built around (the
carts' instants), so its rules are as active as in the in-process figures. A PoP refuses
`customer`, `at`, `spent_coupons` and `pop` from a client, so the load carts are the
benchmark's without them (anonymous shoppers); the receipts carry each cart's customer
attributes as a verified customer token would, for a distinct shopper per receipt.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.quote import ITEMS, RULES, Timing, _row, _summary, make_carts
from edge_worker.core import checkout
from edge_worker.core.release import Release
from edge_worker.host.state import Identity, State
from loadtests.stack import call, clean_env, free_port, run, server, start_control_plane, wait
from poprules import api, receipt
from wasm_build.random_program import GeneratedProgram, generate_program

ROOT = Path(__file__).resolve().parent.parent
POPRULES = str(Path(sys.executable).with_name("poprules"))
REFUSED = ("customer", "at", "spent_coupons", "pop")  # what a PoP takes from no client
POP_THREADS = 2
LOAD_THREADS = 4
LOAD_SECONDS = 5.0
WARMUP_SECONDS = 1.0
RECEIPTS = 500
BATCH = 100
QUOTE_POP, INGEST_POP = "lisbon-1", "berlin-2"  # names the generated programs' rules know
START_TIMEOUT_S = 60.0


class BenchError(RuntimeError):
    """A step of the PoP benchmark failed: reported, and the rest of `make bench` stands."""


def pop_figures(seed: int) -> list[str]:
    """The rows of section 5 of `make bench` (`_row` format), or why they are unavailable."""
    generated = generate_program(seed, rules=RULES, items=ITEMS)
    carts = make_carts(generated, seed)
    with tempfile.TemporaryDirectory(prefix="poprules-bench-pop-") as scratch:
        root = Path(scratch)
        try:
            return _measure(root, generated, carts)
        except Exception as error:  # noqa: BLE001 - reported, like an unavailable engine
            lines = [_row("PoP over loopback", f"unavailable ({type(error).__name__}: "
                                               f"{error})")]
            for log in sorted(root.glob("*.log")):
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                lines += [f"    {log.name}: {line[:160]}" for line in tail]
            return lines


def _measure(root: Path, generated: GeneratedProgram, carts: list[dict[str, Any]]) -> list[str]:
    env = clean_env()
    pop_port = free_port()
    pop = f"http://127.0.0.1:{pop_port}"
    with ExitStack() as running:
        started = start_control_plane(running, root, "bench", root / "cp.log")
        plane, token, base = started.url, started.token, started.base
        version = call("POST", f"{base}/versions", {"program": generated.program_yaml,
                                                     "catalog": generated.catalog_json}, token)
        release = call("POST", f"{base}/releases", {"version": version["number"]}, token)
        states = {name: _enroll(plane, base, token, name, root / name, env)
                  for name in (INGEST_POP, QUOTE_POP)}

        bundle = call("GET", f"{base}/releases/{release['number']}/bundle", token=token,
                       raw=True)
        rules = api.load_release(bundle)
        if rules.hash != release["hash"]:
            raise BenchError("the bundle served is not the release published")
        ingestion = _ingest(plane, states[INGEST_POP], rules, release["number"], carts)

        offset = generated.vocabulary.anchor - int(time.time())
        pop_server = running.enter_context(server(
            [POPRULES, "pop", "serve", "--state", str(states[QUOTE_POP].path), "--bind",
             f"127.0.0.1:{pop_port}", "--threads", str(POP_THREADS)],
            {**env, "POPRULES_POP_CLOCK_OFFSET": str(offset)}, root / "pop.log"))
        wait("the PoP's release", lambda: call("GET", f"{pop}/healthz").get("release")
              == release["number"], pop_server)
        bodies = [{k: v for k, v in cart.items() if k not in REFUSED} for cart in carts]
        call("POST", f"{pop}/v1/quote", bodies[0])  # refused carts fail here, not as load
        load = _load(pop, bodies, root / "carts.json")
    return _report(load, ingestion)


# --- the two measurements -------------------------------------------------------------------


def _load(pop: str, bodies: list[dict[str, Any]], carts_file: Path) -> dict[str, Any]:
    carts_file.write_text(json.dumps(bodies), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--url", pop, "--carts", str(carts_file),
         "--threads", str(LOAD_THREADS), "--duration", str(LOAD_SECONDS), "--warmup",
         str(WARMUP_SECONDS)], cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=LOAD_SECONDS + WARMUP_SECONDS + START_TIMEOUT_S)
    if done.returncode != 0:
        raise BenchError(f"the load generator failed: {done.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _ingest(plane: str, state: State, rules: Release, number: int,
            carts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    identity, key, secret = state.identity(), state.signing_key(), state.secret()
    signed = _receipts(identity, lambda body: key.sign(receipt.statement(body)).signature,
                       rules, number, carts)
    seconds: list[float] = []
    statuses: dict[str, int] = {}
    reasons: list[str] = []
    for start in range(0, len(signed), BATCH):
        began = time.perf_counter()
        answer = call("POST", f"{plane}/v1/receipts",
                       {"receipts": signed[start:start + BATCH]}, secret)
        seconds.append(time.perf_counter() - began)
        for result in answer["results"]:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
            if result["status"] != "booked" and len(reasons) < 3:
                reasons.append(f"{result['id']}: {result['status']}: {result.get('reason')}")
    return {"seconds": seconds, "statuses": statuses, "reasons": reasons}


def _receipts(identity: Identity, sign: Callable[[bytes], bytes], rules: Release, number: int,
              carts: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """RECEIPTS signed sale receipts continuing the PoP's chain from GENESIS, as its checkout
    would make them: a shopper with customer attributes as a verified customer token (a
    distinct shopper each, so no per-customer limit holds one back), an anonymous one with a
    claim token, so every sale books its cashback somewhere."""
    rng = random.Random("bench/receipts")
    made, prev = [], receipt.GENESIS
    for seq in range(1, RECEIPTS + 1):
        cart = carts[(seq - 1) % len(carts)]
        fields = {k: v for k, v in cart.items() if k not in REFUSED}
        attributes = cart.get("customer")
        token = None if attributes is None else {
            "customer": attributes,
            "sub": hashlib.sha256(f"bench/shopper/{seq}".encode()).hexdigest()}
        at = int(datetime.fromisoformat(cart["at"]).timestamp())
        evaluation = checkout.evaluate(rules, None, {**fields, "pop": identity.name},
                                       token=token, at=at)
        claim = None
        if token is None:
            claim = checkout.claim_hash(checkout.claim_token(
                receipt.receipt_id(identity.pop_id, seq),
                checkout.new_claim_secret(rng.randbytes)))
        body = checkout.sale_body(evaluation, merchant_id=identity.merchant_id,
                                  pop_id=identity.pop_id, seq=seq, prev=prev,
                                  release_number=number, release_hash=rules.hash, claim=claim)
        made.append({"body": body.decode("utf-8"), "signature": sign(body).hex()})
        prev = receipt.digest(body)
    return made


# --- report ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value >= 10 else f"{value:,.2f} ms"


def _report(load: dict[str, Any], ingestion: dict[str, Any]) -> list[str]:
    latency = load["latency_ms"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        (f"  POST /v1/quote: {LOAD_THREADS} client threads (bench.loadgen, keep-alive) → PoP "
         f"(1 worker × {POP_THREADS} threads), {WARMUP_SECONDS:g} s + {LOAD_SECONDS:g} s"),
        _row("quotes per second", f"{load['quotes_per_s']:,.0f} /s   ({load['requests']:,} "
                                  f"quotes in {load['seconds']:.2f} s)"),
        _row("latency", "   ".join(f"{name} {_ms(latency[name])}" for name in
                                   ("p50", "p90", "p99", "max")) if latency else "none"),
        _row("errors (non-200 or failed)", f"{load['errors']:,} of {load['requests']:,}"),
    ]
    if load["errors"]:
        lines.append(f"  WARNING: errors by status {load['error_statuses']}; first: "
                     f"{load['error_samples'][:2]}")
    lines.append(f"  caveat: {cores} cores shared by the PoP and the load generator: the "
                 "rate is the pair's, not the PoP's alone")
    seconds: list[float] = ingestion["seconds"]
    total, statuses = sum(seconds), ingestion["statuses"]
    received = sum(statuses.values())
    batches: Timing = _summary([round(s * 1e9) for s in seconds])
    lines += [
        (f"  POST /v1/receipts: {RECEIPTS} signed sales, batches of {BATCH} in turn "
         "(signature, chain, re-run, ledger)"),
        _row("receipts ingested per second", f"{received / total:,.0f} /s   ({received:,} "
                                             f"receipts in {total:.2f} s)"),
        _row(f"per batch of {BATCH}", batches),
        _row("results", ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))),
    ]
    if statuses.get("booked", 0) != RECEIPTS:
        lines.append(f"  WARNING: not every receipt was booked: {ingestion['reasons']}")
    return lines


# --- processes and HTTP ---------------------------------------------------------------------


def _enroll(plane: str, base: str, token: str, name: str, directory: Path,
            env: dict[str, str]) -> State:
    enrollment = call("POST", f"{base}/enrollment-tokens", {"pop": name}, token)
    run([POPRULES, "pop", "enroll", "--control-plane", plane, "--token", enrollment["token"],
          "--state", str(directory)], env)
    return State(directory)


