"""`make sweep`: a PoP's latency against the offered rate of `POST /v1/quote`, as a chart.

Issue 8's rate sweep. The same stack as section 5 of `make bench` (`bench/pop.py`): a control
plane (`poprules cp serve`, SQLite) publishes the benchmark's 100-rule, 2,000-item program, a
PoP enrolls and serves it (`poprules pop serve --threads 8`, its clock at the program's
schedule anchor), and the load is the benchmark's 50 carts of 20 lines without the fields a
PoP refuses. Then, for each offered rate in turn, a separate load process (`python -m
bench.loadgen --rate R`) sends requests on a fixed schedule, open loop: request k goes at
start + k/R whatever happened before, and its latency runs from that scheduled time, so a
PoP that falls behind shows its queue in the latency instead of slowing the client down
(closed-loop load hides it: coordinated omission). Each step has a warm-up that is not counted
and waits for the last scheduled request's answer, so an overloaded step drains its backlog
and its achieved rate is what the PoP got through.

Prints a table (offered and achieved rate, p50/p90/p99/max, errors, how late the client sent)
and draws p50 and p99 against the offered rate, with the achieved rate beneath, to
docs/img/pop-rate-sweep.png (docs/performance.md embeds it). The load generator shares the
machine's cores with the PoP, so the knee is that of the pair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pop import (
    POP_THREADS,
    POPRULES,
    QUOTE_POP,
    REFUSED,
    ROOT,
    START_TIMEOUT_S,
    BenchError,
    _enroll,
)
from bench.quote import DEFAULT_SEED, ITEMS, RULES, machine, make_carts
from loadtests.stack import call, clean_env, free_port, server, start_control_plane, wait
from wasm_build.random_program import GeneratedProgram, generate_program

RATES = (100, 250, 500, 750, 1000, 1500, 2000)  # offered quotes per second
STEP_SECONDS = 8.0
WARMUP_SECONDS = 1.0
# Enough client threads that they are rarely all busy below the knee (each holds one
# keep-alive connection; the PoP's gunicorn thread worker keeps them all open).
LOAD_THREADS = 32
# Objectives of issue 8 for a local PoP at 500 quotes/s, drawn on the chart.
P50_TARGET_MS, P99_TARGET_MS, TARGET_RATE = 2.0, 5.0, 500
CHART = ROOT / "docs" / "img" / "pop-rate-sweep.png"


@contextmanager
def quoting_pop(root: Path, generated: GeneratedProgram) -> Iterator[str]:
    """A control plane and one PoP serving the published program, as `bench/pop.py` starts
    them (without its receipt PoP); yields the PoP's base URL and stops both afterwards."""
    env = clean_env()
    pop_port = free_port()
    pop = f"http://127.0.0.1:{pop_port}"
    with ExitStack() as running:
        started = start_control_plane(running, root, "sweep", root / "cp.log")
        plane, token, base = started.url, started.token, started.base
        version = call("POST", f"{base}/versions", {"program": generated.program_yaml,
                                                     "catalog": generated.catalog_json}, token)
        release = call("POST", f"{base}/releases", {"version": version["number"]}, token)
        state = _enroll(plane, base, token, QUOTE_POP, root / QUOTE_POP, env)
        offset = generated.vocabulary.anchor - int(time.time())
        pop_server = running.enter_context(server(
            [POPRULES, "pop", "serve", "--state", str(state.path), "--bind",
             f"127.0.0.1:{pop_port}", "--threads", str(POP_THREADS)],
            {**env, "POPRULES_POP_CLOCK_OFFSET": str(offset)}, root / "pop.log"))
        wait("the PoP's release", lambda: call("GET", f"{pop}/healthz").get("release")
              == release["number"], pop_server)
        yield pop


def step(pop: str, carts_file: Path, rate: float, seconds: float) -> dict[str, Any]:
    """One offered rate, open loop, in its own load process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--url", pop, "--carts", str(carts_file),
         "--threads", str(LOAD_THREADS), "--duration", str(seconds), "--warmup",
         str(WARMUP_SECONDS), "--rate", str(rate)], cwd=ROOT, capture_output=True, text=True,
        check=False, timeout=WARMUP_SECONDS + seconds + 10 * START_TIMEOUT_S)
    if done.returncode != 0:
        raise BenchError(f"the load generator failed: {done.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if "late_ms" not in result:
        raise BenchError("bench.loadgen ran closed loop: it has no --rate mode")
    return result


def sweep(seed: int, rates: Sequence[float], seconds: float) -> list[dict[str, Any]]:
    generated = generate_program(seed, rules=RULES, items=ITEMS)
    bodies = [{k: v for k, v in cart.items() if k not in REFUSED}
              for cart in make_carts(generated, seed)]
    steps = []
    with tempfile.TemporaryDirectory(prefix="poprules-sweep-") as scratch:
        root = Path(scratch)
        carts_file = root / "carts.json"
        carts_file.write_text(json.dumps(bodies), encoding="utf-8")
        try:
            with quoting_pop(root, generated) as pop:
                call("POST", f"{pop}/v1/quote", bodies[0])  # a refused cart fails here
                for rate in rates:
                    load = os.getloadavg()[0]
                    result = step(pop, carts_file, rate, seconds)
                    steps.append({**result, "offered": rate, "loadavg": load})
                    print(_line(steps[-1]), flush=True)
        except Exception:
            for log in sorted(root.glob("*.log")):
                for line in log.read_text(errors="replace").strip().splitlines()[-5:]:
                    print(f"    {log.name}: {line[:160]}", file=sys.stderr)
            raise
    return steps


# --- report ---------------------------------------------------------------------------------

HEADER = (f"{'offered /s':>10} {'achieved /s':>11} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7} {'late p99 ms':>11} {'load':>5}")


def _line(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    return (f"{s['offered']:>10,.0f} {s['quotes_per_s']:>11,.0f} {lat['p50']:>8.2f} "
            f"{lat['p90']:>8.2f} {lat['p99']:>8.2f} {lat['max']:>8.1f} {s['errors']:>7,} "
            f"{s['late_ms'].get('p99', 0.0):>11.2f} {s['loadavg']:>5.2f}")


def draw(steps: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Latency on a log scale over the offered rate, the achieved rate beneath it."""
    import matplotlib

    matplotlib.use("Agg")  # a file, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    offered = [s["offered"] for s in steps]
    achieved = [s["quotes_per_s"] for s in steps]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 6.5), dpi=110,
                                      gridspec_kw={"height_ratios": [3, 2]})
    top.plot(offered, [s["latency_ms"]["p50"] for s in steps], "o-", label="p50")
    top.plot(offered, [s["latency_ms"]["p99"] for s in steps], "s-", label="p99")
    top.axhline(P99_TARGET_MS, color="tab:orange", ls=":", lw=1)
    top.axhline(P50_TARGET_MS, color="tab:blue", ls=":", lw=1)
    top.axvline(TARGET_RATE, color="grey", ls=":", lw=1)
    top.annotate(f"targets at {TARGET_RATE}/s: p50 ≤ {P50_TARGET_MS:g} ms, "
                 f"p99 ≤ {P99_TARGET_MS:g} ms", (TARGET_RATE, P99_TARGET_MS),
                 xytext=(4, -4), textcoords="offset points", fontsize=8, color="grey",
                 va="top")
    top.set_yscale("log")
    # Plain numbers at 1-2-5 steps rather than powers of ten: the knee spans decades.
    top.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    top.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    top.yaxis.set_minor_formatter(NullFormatter())
    top.set_ylabel("latency from the scheduled send (ms)")
    top.grid(True, which="both", alpha=0.3)
    top.legend(loc="upper left")
    fig.suptitle(title, fontsize=9)
    bottom.plot(offered, offered, ls="--", color="grey", lw=1, label="offered")
    bottom.plot(offered, achieved, "o-", color="tab:green", label="achieved")
    bottom.set_xlabel("offered rate (quotes/s, open loop)")
    bottom.set_ylabel("quotes/s")
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the program and carts (default {DEFAULT_SEED})")
    parser.add_argument("--rates", default=",".join(map(str, RATES)),
                        help="offered rates in quotes/s, comma-separated (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=STEP_SECONDS,
                        help="seconds counted per rate, after a 1 s warm-up (default "
                             "%(default)s)")
    parser.add_argument("--chart", type=Path, default=CHART, help="the PNG to write")
    args = parser.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        parser.error("--rates: expected numbers separated by commas")
    if not rates or min(rates) <= 0 or args.seconds <= 0:
        parser.error("expected rates > 0 and seconds > 0")
    print("poprules rate sweep (issue 8): POST /v1/quote, open loop, against a local PoP")
    for key, value in machine():
        print(f"  {key:<13} {value}")
    print(f"\nPoP: granian, 1 worker × {POP_THREADS} threads; load: bench.loadgen --rate, "
          f"{LOAD_THREADS} threads, {WARMUP_SECONDS:g} s warm-up + {args.seconds:g} s a rate; "
          f"{RULES} rules, {ITEMS:,} items, 50 carts of 20 lines (seed {args.seed})\n")
    print(HEADER)
    steps = sweep(args.seed, rates, args.seconds)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    day = datetime.now(UTC).date().isoformat()
    loads = [s["loadavg"] for s in steps]
    draw(steps, args.chart, f"local PoP, POST /v1/quote, {RULES} rules, 20-line carts, "
                            f"1 worker × {POP_THREADS} threads, {day}\n{cores} cores shared "
                            f"with the open-loop load generator ({LOAD_THREADS} threads); "
                            f"load average {min(loads):.1f}–{max(loads):.1f}")
    print(f"\nchart: {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
