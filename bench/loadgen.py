"""A load generator for a PoP's `POST /v1/quote`, run as its own process (`bench/pop.py`
starts it), so the client's work is not counted inside the server's and the server's is not
slowed by sharing the client's interpreter lock.

    python -m bench.loadgen --url http://127.0.0.1:PORT --carts carts.json
                            [--threads 4] [--duration 5] [--warmup 1] [--rate R]

Each thread keeps one HTTP/1.1 keep-alive connection and sends the carts (a JSON list of
request bodies, encoded once beforehand). Closed loop (the default), each thread sends one
after another, from its own starting cart: the rate is whatever the server sustains. Open loop
(`--rate R`), request k is *scheduled* at start + k/R seconds, whatever happened before; a free
thread takes the next slot, waits for its time and sends it, and its latency runs from the
scheduled time, not from the send: a slow answer that holds every thread makes the requests
queued behind it late, and they count as slow (no coordinated omission). Use enough threads
that they are rarely all busy (`late_ms` says by how much sends lagged their schedule).

Requests of the warm-up are not counted; then every request that *starts* (closed loop) or is
scheduled (open loop) within `duration` seconds is timed (to the last byte of the answer read)
and counted. Any answer but 200, and any connection failure, is an error: it is counted with
its status and the first error bodies are kept, and the thread opens a new connection after a
failure.

Prints one JSON object on stdout: {"requests", "errors", "seconds", "quotes_per_s",
"latency_ms": {"mean", "p50", "p90", "p99", "max"}, "error_statuses", "error_samples",
"threads", "reconnects"}, and with `--rate` also "rate" and "late_ms" {"p50", "p99", "max"}.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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
    late_ns: list[int] = field(default_factory=list)  # open loop: send time - scheduled time


HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


class _Client:
    """One keep-alive connection; a failure is an answer with status 0, then a new one."""

    def __init__(self, host: str, port: int, tally: Tally) -> None:
        self.host, self.port, self.tally = host, port, tally
        self.connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)

    def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            self.connection.request("POST", PATH, body=body, headers=HEADERS)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port,
                                                         timeout=TIMEOUT_S)
            self.tally.reconnects += 1
            return 0, f"{type(exc).__name__}: {exc}".encode()

    def count(self, status: int, answer: bytes, elapsed_ns: int, ended: float) -> None:
        tally = self.tally
        tally.latencies_ns.append(elapsed_ns)
        tally.last_end = ended
        if status != 200:
            tally.statuses[str(status)] += 1
            if len(tally.samples) < KEPT_ERRORS:
                tally.samples.append(f"{status}: {answer[:300].decode(errors='replace')}")


def _worker(host: str, port: int, bodies: Sequence[bytes], first: int, start_at: float,
            measure_at: float, end_at: float, tally: Tally) -> None:
    client = _Client(host, port, tally)
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
            status, answer = client.post(body)
            elapsed = time.perf_counter_ns() - t0
            if began >= measure_at:  # not the warm-up
                client.count(status, answer, elapsed, clock())
    finally:
        client.connection.close()


def _paced_worker(host: str, port: int, bodies: Sequence[bytes], slots: Callable[[], int],
                  rate: float, start_at: float, measure_at: float, end_at: float,
                  tally: Tally) -> None:
    """Open loop: take the next slot, wait for its scheduled time, send; the latency runs
    from the schedule, so time spent waiting for a free thread counts against the server."""
    client = _Client(host, port, tally)
    clock = time.perf_counter
    try:
        while True:
            slot = slots()
            scheduled = start_at + slot / rate
            if scheduled >= end_at:
                return
            while (wait := scheduled - clock()) > 0:
                time.sleep(wait)
            sent = clock()
            status, answer = client.post(bodies[slot % len(bodies)])
            ended = clock()
            if scheduled >= measure_at:  # not the warm-up
                client.count(status, answer, round((ended - scheduled) * 1e9), ended)
                tally.late_ns.append(round((sent - scheduled) * 1e9))
    finally:
        client.connection.close()


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile, in ms."""
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank] / 1e6


def run(url: str, bodies: Sequence[bytes], *, threads: int, duration: float,
        warmup: float, rate: float | None = None) -> dict[str, Any]:
    """Closed loop, or open loop at `rate` requests per second when one is given."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise ValueError(f"expected http://host:port, got {url!r}")
    tallies = [Tally() for _ in range(threads)]
    start_at = time.perf_counter() + 0.05  # every thread made before any request goes
    measure_at = start_at + warmup
    end_at = measure_at + duration
    if rate is None:
        workers = [threading.Thread(target=_worker, daemon=True, args=(
            parts.hostname, parts.port, bodies, n * len(bodies) // threads, start_at,
            measure_at, end_at, tally)) for n, tally in enumerate(tallies)]
    else:
        counter: Iterator[int] = itertools.count()  # next() on it is atomic under the GIL
        workers = [threading.Thread(target=_paced_worker, daemon=True, args=(
            parts.hostname, parts.port, bodies, counter.__next__, rate, start_at, measure_at,
            end_at, tally)) for tally in tallies]
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
    paced: dict[str, Any] = {}
    if rate is not None:
        late = sorted(ns for tally in tallies for ns in tally.late_ns)
        paced = {"rate": rate, "late_ms": {} if not late else {
            "p50": round(_percentile(late, 0.50), 3), "p99": round(_percentile(late, 0.99), 3),
            "max": round(late[-1] / 1e6, 3)}}
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
        **paced,
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
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop: requests per second, on a fixed schedule, latency "
                             "from the scheduled time (default: closed loop)")
    args = parser.parse_args(argv)
    carts = json.loads(args.carts.read_text(encoding="utf-8"))
    if not isinstance(carts, list) or not carts or args.threads < 1 or args.duration <= 0:
        parser.error("expected a non-empty list of carts, threads ≥ 1 and a duration > 0")
    if args.rate is not None and args.rate <= 0:
        parser.error("expected a rate > 0")
    bodies = [json.dumps(cart, separators=(",", ":")).encode("utf-8") for cart in carts]
    result = run(args.url, bodies, threads=args.threads, duration=args.duration,
                 warmup=args.warmup, rate=args.rate)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
