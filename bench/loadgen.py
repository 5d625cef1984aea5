"""A load generator for a PoP's `POST /v1/quote`, run as its own process (`bench/pop.py`
starts it), so the client's work is not counted inside the server's and the server's is not
slowed by sharing the client's interpreter lock.

    python -m bench.loadgen --url http://127.0.0.1:PORT --carts carts.json
                            [--threads 4] [--duration 5] [--warmup 1]

Each thread keeps one HTTP/1.1 keep-alive connection and sends the carts (a JSON list of
request bodies, encoded once beforehand) one after another, in a loop, each thread from its
own starting cart. Requests of the warm-up are not counted; then every request that *starts*
within `duration` seconds is timed (send to last byte of the answer read) and counted. Any
answer but 200, and any connection failure, is an error: it is counted with its status and the
first error bodies are kept, and the thread opens a new connection after a failure.

Prints one JSON object on stdout: {"requests", "errors", "seconds", "quotes_per_s",
"latency_ms": {"mean", "p50", "p90", "p99", "max"}, "error_statuses", "error_samples",
"threads", "reconnects"}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PATH = "/v1/quote"
TIMEOUT_S = 30.0
KEPT_ERRORS = 5


@dataclass
class Tally:
    """One thread's counts: only its own thread writes it, so no lock is needed."""

    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    reconnects: int = 0
    last_end: float = 0.0


def _worker(host: str, port: int, bodies: Sequence[bytes], first: int, start_at: float,
            measure_at: float, end_at: float, tally: Tally) -> None:
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    clock = time.perf_counter
    index = first
    while clock() < start_at:
        time.sleep(0.001)
    try:
        while True:
            began = clock()
            if began >= end_at:
                return
            body = bodies[index % len(bodies)]
            index += 1
            t0 = time.perf_counter_ns()
            try:
                connection.request("POST", PATH, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, answer = 0, f"{type(exc).__name__}: {exc}".encode()
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
                tally.reconnects += 1
            elapsed = time.perf_counter_ns() - t0
            if began < measure_at:
                continue  # the warm-up
            tally.latencies_ns.append(elapsed)
            tally.last_end = clock()
            if status != 200:
                tally.statuses[str(status)] += 1
                if len(tally.samples) < KEPT_ERRORS:
                    tally.samples.append(f"{status}: {answer[:300].decode(errors='replace')}")
    finally:
        connection.close()


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile, in ms."""
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank] / 1e6


def run(url: str, bodies: Sequence[bytes], *, threads: int, duration: float,
        warmup: float) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"expected http://host:port, got {url!r}")
    tallies = [Tally() for _ in range(threads)]
    start_at = time.perf_counter() + 0.05  # every thread made before any request goes
    measure_at = start_at + warmup
    end_at = measure_at + duration
    workers = [threading.Thread(target=_worker, daemon=True, args=(
        parts.hostname, parts.port, bodies, n * len(bodies) // threads, start_at, measure_at,
        end_at, tally)) for n, tally in enumerate(tallies)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    latencies = sorted(ns for tally in tallies for ns in tally.latencies_ns)
    statuses: Counter[str] = Counter()
    for tally in tallies:
        statuses.update(tally.statuses)
    # From the first counted start to the last counted answer.
    seconds = max((t.last_end for t in tallies), default=measure_at) - measure_at
    requests = len(latencies)
    return {
        "requests": requests,
        "errors": sum(statuses.values()),
        "seconds": round(seconds, 3),
        "quotes_per_s": round(requests / seconds, 1) if seconds > 0 else 0.0,
        "latency_ms": {} if not latencies else {
            "mean": round(statistics.fmean(latencies) / 1e6, 3),
            "p50": round(_percentile(latencies, 0.50), 3),
            "p90": round(_percentile(latencies, 0.90), 3),
            "p99": round(_percentile(latencies, 0.99), 3),
            "max": round(latencies[-1] / 1e6, 3),
        },
        "error_statuses": dict(statuses),
        "error_samples": [s for tally in tallies for s in tally.samples][:KEPT_ERRORS],
        "threads": threads,
        "reconnects": sum(t.reconnects for t in tallies),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="the PoP's base URL, http://host:port")
    parser.add_argument("--carts", required=True, type=Path,
                        help="a JSON file holding a list of quote request bodies")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds counted, after the warm-up (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of requests not counted (default 1)")
    args = parser.parse_args(argv)
    carts = json.loads(args.carts.read_text(encoding="utf-8"))
    if not isinstance(carts, list) or not carts or args.threads < 1 or args.duration <= 0:
        parser.error("expected a non-empty list of carts, threads ≥ 1 and a duration > 0")
    bodies = [json.dumps(cart, separators=(",", ":")).encode("utf-8") for cart in carts]
    result = run(args.url, bodies, threads=args.threads, duration=args.duration,
                 warmup=args.warmup)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
