"""Where a PoP's `POST /v1/quote` spends its time, in process: the reproducible profile behind
the "PoP profile" section of docs/performance.md (issue 8).

    python -m bench.profile_pop [--seed 17] [--rounds 20] [--top 25]
    python -m bench.profile_pop --loopback [--rate 500] [--pop-threads 2] [--duration 10]

The workload is `make bench`'s PoP load (bench/pop.py): the generated 100-rule, 2,000-SKU
program, its 50 carts of 20 lines without the fields a PoP refuses, encoded as the load
generator sends them, and the PoP's clock at the instant the program's schedules are built
around. `PopApp.handle` is called exactly as a host calls it, with a real release, the host's
Ed25519 signer (PyNaCl) and an outbox no quote touches, so the time is the core's alone: no
HTTP server, no socket, no load generator sharing the machine.

Prints the µs per request (the median round over all carts, and the fastest), then a cProfile
of the same requests: the functions with the most own time, and the cumulative time of the
steps that matter to a quote. Every answer must be a 200 before anything is timed.

`--loopback` measures the same carts over HTTP instead: bench/pop.py's control plane and
`poprules pop serve` as real processes, and `bench.loadgen` in open loop at `--rate` requests
per second (latency from each request's scheduled time), printing its JSON result with the
PoP's CPU time per request added (`pop_cpu_us_per_request`, Linux).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from nacl.signing import SigningKey

from bench.pop import REFUSED, ROOT, START_TIMEOUT_S, _enroll
from bench.quote import DEFAULT_SEED, ITEMS, RULES, make_carts, write_program
from edge_worker.core.pop import HttpRequest, Live, PopApp
from edge_worker.core.release import Release
from loadtests import stack
from poprules import api
from wasm_build.random_program import generate_program

POP_ID, MERCHANT_ID, POP_NAME = 7, 4, "lisbon-1"  # a name the generated programs' rules know
HEADERS = {"content-type": "application/json"}
# Cumulative time of these (a function name, as cProfile shows it) is what the report lists:
# the request read, the evaluation, the encodings, the signature.
STEPS = ("handle", "_request_fields", "evaluate", "quote", "read_request", "quote_id",
         "signed_quote", "signed_quote_json", "encode", "dumps", "sign", "_json")


class _NoOutbox:
    """A quote stores nothing; the outbox only feeds the depth gauge."""

    def append(self, build: Callable[[int, str], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
        raise AssertionError("a quote stores no receipt")

    def depth(self) -> int:
        return 0

    def find(self, receipt_id: str) -> bytes | None:
        return None

    def refunded(self, receipt_id: str) -> set[int]:
        return set()


class _Fixed:
    def __init__(self, live: Live) -> None:
        self.live = live

    def current(self) -> Live:
        return self.live


def make_app(seed: int) -> tuple[PopApp, list[bytes]]:
    """The PoP core serving the benchmark's program, and the quote bodies to send it."""
    generated = generate_program(seed, rules=RULES, items=ITEMS)
    with tempfile.TemporaryDirectory(prefix="poprules-profile-") as scratch:
        program = api.load(*write_program(generated, Path(scratch)))
    release: Release = api.load_release(api.build(program))
    key = SigningKey(bytes(range(32)))
    anchor = generated.vocabulary.anchor
    app = PopApp(merchant_id=MERCHANT_ID, pop_id=POP_ID, pop_name=POP_NAME,
                 signer=lambda message: key.sign(message).signature, clock=lambda: anchor,
                 releases=_Fixed(Live(release, 1)), outbox=_NoOutbox())
    bodies = [json.dumps({k: v for k, v in cart.items() if k not in REFUSED},
                         separators=(",", ":")).encode("utf-8")
              for cart in make_carts(generated, seed)]
    return app, bodies


def _requests(bodies: Sequence[bytes]) -> list[HttpRequest]:
    return [HttpRequest("POST", "/v1/quote", "", HEADERS, body) for body in bodies]


def time_rounds(app: PopApp, requests: Sequence[HttpRequest], rounds: int) -> list[float]:
    """µs per request of each round over every request; the collector stays off while timed,
    as it would rarely run within one request."""
    per_request = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            began = time.perf_counter_ns()
            for request in requests:
                app.handle(request)
            per_request.append((time.perf_counter_ns() - began) / 1e3 / len(requests))
    finally:
        gc.enable()
    return per_request


def profile(app: PopApp, requests: Sequence[HttpRequest], rounds: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        for request in requests:
            app.handle(request)
    profiler.disable()
    return pstats.Stats(profiler)


def report(stats: pstats.Stats, calls: int, top: int) -> list[str]:
    """The `top` functions by own time, then the steps' cumulative time, in µs per request
    (cProfile's own overhead included, so they add up to more than the timed figure)."""
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in rows.values()) * 1e6 / calls
    lines = [f"profiled: {total:,.0f} µs of own time per request (under cProfile)",
             f"{'own µs':>8} {'cum µs':>8} {'calls':>6}  function"]
    ordered = sorted(rows.items(), key=lambda item: -item[1][2])
    for (path, line, name), (_, ncalls, own, cumulative, _) in ordered[:top]:
        where = f"{Path(path).name}:{line}" if line else path
        lines.append(f"{own * 1e6 / calls:8.1f} {cumulative * 1e6 / calls:8.1f} "
                     f"{ncalls / calls:6.1f}  {name} ({where})")
    lines.append(f"{'cum µs':>8} {'calls':>6}  step")
    for (path, line, name), (_, ncalls, _, cumulative, _) in sorted(
            rows.items(), key=lambda item: -item[1][3]):
        if name in STEPS and ("edge_worker" in path or "poprules" in path or "json" in path
                              or name == "sign"):
            lines.append(f"{cumulative * 1e6 / calls:8.1f} {ncalls / calls:6.1f}  {name} "
                         f"({Path(path).parent.name}/{Path(path).name}:{line})")
    return lines


def loopback(seed: int, *, rate: float, pop_threads: int, load_threads: int,
             duration: float, warmup: float) -> str:
    """bench/pop.py's processes (without its receipt ingestion), then the open-loop load;
    returns the load generator's JSON."""
    generated = generate_program(seed, rules=RULES, items=ITEMS)
    bodies = [{k: v for k, v in cart.items() if k not in REFUSED}
              for cart in make_carts(generated, seed)]
    with tempfile.TemporaryDirectory(prefix="poprules-profile-") as scratch:
        root = Path(scratch)
        env = stack.clean_env()
        pop_port = stack.free_port()
        pop = f"http://127.0.0.1:{pop_port}"
        with ExitStack() as running:
            started = stack.start_control_plane(running, root, "bench", root / "cp.log")
            plane, token, base = started.url, started.token, started.base
            version = stack.call("POST", f"{base}/versions", {
                "program": generated.program_yaml, "catalog": generated.catalog_json}, token)
            release = stack.call("POST", f"{base}/releases", {"version": version["number"]},
                                  token)
            state = _enroll(plane, base, token, POP_NAME, root / POP_NAME, env)
            offset = generated.vocabulary.anchor - int(time.time())
            with stack.server(
                    [stack.POPRULES, "pop", "serve", "--state", str(state.path), "--bind",
                     f"127.0.0.1:{pop_port}", "--threads", str(pop_threads)],
                    {**env, "POPRULES_POP_CLOCK_OFFSET": str(offset)},
                    root / "pop.log") as server:
                stack.wait("the PoP's release", lambda: stack.call(
                    "GET", f"{pop}/healthz").get("release") == release["number"], server)
                stack.call("POST", f"{pop}/v1/quote", bodies[0])
                carts = root / "carts.json"
                carts.write_text(json.dumps(bodies), encoding="utf-8")
                cpu = _cpu_seconds(server.pid)
                done = subprocess.run(
                    [sys.executable, "-m", "bench.loadgen", "--url", pop, "--carts",
                     str(carts), "--threads", str(load_threads), "--duration", str(duration),
                     "--warmup", str(warmup), "--rate", str(rate)],
                    cwd=ROOT, capture_output=True, text=True, check=True,
                    timeout=duration + warmup + START_TIMEOUT_S)
                cpu = _cpu_seconds(server.pid) - cpu
    result = json.loads(done.stdout)
    # The PoP's processes' CPU over warm-up and load, per request sent: what a quote costs
    # the server whatever the machine's other load does to latency.
    sent = round((duration + warmup) * rate)
    result["pop_cpu_us_per_request"] = round(cpu * 1e6 / sent, 1)
    return json.dumps(result)


def _cpu_seconds(group: int) -> float:
    """User + system CPU of the processes of a process group (Linux /proc; 0 elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == group:  # pgrp; fields[11:13] are utime and stime
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_pop",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rounds", type=int, default=20,
                        help="timed rounds over the 50 carts (default 20)")
    parser.add_argument("--top", type=int, default=25, help="functions listed (default 25)")
    parser.add_argument("--loopback", action="store_true",
                        help="measure over HTTP against `poprules pop serve` instead")
    parser.add_argument("--rate", type=float, default=500.0,
                        help="--loopback: requests per second, open loop (default 500)")
    parser.add_argument("--pop-threads", type=int, default=stack.POP_THREADS,
                        help=f"--loopback: the PoP's threads (default {stack.POP_THREADS})")
    parser.add_argument("--load-threads", type=int, default=16,
                        help="--loopback: the load generator's connections (default 16)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="--loopback: seconds counted (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="--loopback: seconds not counted (default 2)")
    args = parser.parse_args(argv)
    if args.loopback:
        print(loopback(args.seed, rate=args.rate, pop_threads=args.pop_threads,
                       load_threads=args.load_threads, duration=args.duration,
                       warmup=args.warmup))
        return 0
    app, bodies = make_app(args.seed)
    requests = _requests(bodies)
    for request in requests:  # warm-up, and a wrong answer is not a result
        response = app.handle(request)
        if response.status != 200:
            raise SystemExit(f"the PoP answered {response.status}: {response.body[:300]!r}")
    timed = time_rounds(app, requests, args.rounds)
    print(f"POST /v1/quote in process: {len(requests)} carts of 20 lines, 100 rules, "
          f"{args.rounds} rounds")
    print(f"µs per request: median {statistics.median(timed):,.0f}, best {min(timed):,.0f}")
    rounds = max(1, args.rounds // 4)
    for line in report(profile(app, requests, rounds), rounds * len(requests), args.top):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
