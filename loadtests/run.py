"""`make loadtest`: one command from nothing to a verdict.

    python -m loadtests.run [--profile steady|soak|spike|smoke] [--rate REQUESTS_PER_S]
                            [--duration SECONDS] [--processes N] [--seed TEXT] [--reports DIR]
                            [--without-merchant]

Without `POPRULES_LOADTEST_POP`, starts a control plane and a PoP on loopback serving a
generated 100-rule, 2,000-sku program (loadtests/stack.py); with it, loads that PoP instead,
reading the release it runs from `POPRULES_LOADTEST_CP` with `POPRULES_LOADTEST_TOKEN`. Then
runs locust headless for the profile's duration, writes locust's CSV and HTML reports and the
verdict table under `--reports` (loadtests/reports/), prints the table, and stops whatever it
started however the run ends. For a PoP started here, two more objectives of slo.toml are
judged on the host: the PoP's memory growth after the warm-up (its server and worker
processes, sampled every 2 s) and how soon its receipt outbox drains to 0 once the load
stops. The exit code is 0 when every objective was met.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil  # type: ignore[import-untyped]  # a dependency of locust's

from loadtests import shapes, slo, users
from loadtests.stack import POPRULES, StackError, Target, local_stack, workload

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOCUSTFILE = HERE / "locustfile.py"
REPORTS = HERE / "reports"
SLACK_S = 120.0  # beyond the profile's length before the run is given up as hung
SAMPLE_S = 2.0  # between samples of a local PoP's memory
DRAIN_POLL_S = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(shapes.PROFILES),
                        default=os.environ.get(shapes.PROFILE_ENV) or "steady")
    parser.add_argument("--rate", type=float, help="requests/s (default: the profile's)")
    parser.add_argument("--duration", type=float, help="seconds (steady, soak, smoke)")
    parser.add_argument("--processes", type=int, default=1,
                        help="locust load processes (--processes); 1: a single process")
    parser.add_argument("--seed", default=os.environ.get(users.SEED_ENV) or "1")
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument("--without-merchant", action="store_true",
                        help="no control-plane user (simulate, publish) during the load")
    args = parser.parse_args(argv)
    settings = {shapes.PROFILE_ENV: args.profile, users.SEED_ENV: args.seed}
    if args.without_merchant:
        settings[users.MERCHANT_ENV] = "off"
    if args.rate is not None:
        settings[shapes.RATE_ENV] = str(args.rate)
    if args.duration is not None:
        settings[shapes.DURATION_ENV] = str(args.duration)
    profile = shapes.PROFILES[args.profile]({**os.environ, **settings})
    args.reports.mkdir(parents=True, exist_ok=True)
    try:
        with _target(args.reports / "logs") as target:
            print(f"load test {args.profile}: {profile.rate:g} requests/s for "
                  f"{profile.seconds:g} s against the PoP at {target.pop}", flush=True)
            objectives = slo.load(args.profile)
            prefix = args.reports / args.profile
            if target.pop_pid is None or target.pop_state is None:
                return _locust(target, settings, args.processes, prefix,
                               profile.seconds + SLACK_S)
            with MemoryWatch(target.pop_pid) as memory:
                code = _locust(target, settings, args.processes, prefix,
                               profile.seconds + SLACK_S)
            warm_s = max(objectives.warmup_s, profile.seconds / 10)
            rows = [memory.row(warm_s, objectives.memory_growth),
                    _drained(target.pop_state, objectives.outbox_drain_s)]
            return _host_verdict(rows, prefix, code)
    except StackError as error:
        print(f"load test: {error}", file=sys.stderr)
        return 2


@contextmanager
def _target(logs: Path) -> Iterator[Target]:
    pop = os.environ.get(users.POP_ENV)
    if pop:
        yield Target(pop, os.environ.get(users.CP_ENV), os.environ.get(users.TOKEN_ENV))
    else:
        with local_stack(logs) as started:
            print(f"started a control plane at {started.control_plane} and a PoP at "
                  f"{started.pop} (logs in {logs})", flush=True)
            yield started


def _locust(target: Target, settings: dict[str, str], processes: int, prefix: Path,
            timeout: float) -> int:
    table = Path(f"{prefix}_slo.txt")
    table.unlink(missing_ok=True)  # a verdict shown is this run's
    with tempfile.TemporaryDirectory(prefix="poprules-loadtest-workload-") as scratch:
        carts_from = Path(scratch) / "workload.json"  # customer tokens: not kept in reports
        workload(target).dump(carts_from)
        env = {**os.environ, **settings, users.POP_ENV: target.pop,
               users.WORKLOAD_ENV: str(carts_from)}
        if target.control_plane and target.token:
            env |= {users.CP_ENV: target.control_plane, users.TOKEN_ENV: target.token}
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                   "--only-summary", "--loglevel", "WARNING", "--csv", str(prefix),
                   "--html", f"{prefix}.html"]
        if processes > 1:
            command += ["--processes", str(processes)]
        done = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout, check=False)
    if not table.exists():
        print(f"load test: locust exited ({done.returncode}) without a verdict",
              file=sys.stderr)
        return done.returncode or 1
    print(f"\n{table.read_text(encoding='utf-8')}reports: {prefix}_*.csv, {prefix}.html, "
          f"{table}", flush=True)
    return done.returncode


class MemoryWatch:
    """A local PoP's resident memory (the server and its workers), sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []  # (monotonic seconds, bytes)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="pop-memory", daemon=True)

    def __enter__(self) -> Self:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()

    def _sample(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            try:
                processes = [self.process, *self.process.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in processes)
            except psutil.Error:  # a worker restarting: the next sample has it
                continue
            self.samples.append((time.monotonic(), rss))

    def row(self, warm_s: float, allowed: float | None) -> slo.Row:
        """Growth from the first sample after `warm_s` to the last (judged when `allowed`)."""
        after = [rss for at, rss in self.samples if at - self.started >= warm_s]
        if len(after) < 2:
            return slo.Row("local PoP", "", "memory growth", _share(allowed), "too few samples",
                           allowed is None)
        growth = after[-1] / after[0] - 1
        return slo.Row("local PoP", "", "memory growth", _share(allowed),
                       f"{growth:+.1%} ({after[0] / 2**20:.0f}→{after[-1] / 2**20:.0f} MiB)",
                       allowed is None or growth <= allowed)


def _share(allowed: float | None) -> str:
    return "-" if allowed is None else f"≤ {allowed:.0%}"


def _drained(state: Path, within_s: float | None) -> slo.Row:
    """Receipts the PoP has not uploaded yet, polled until none are left or time is up."""
    began = time.monotonic()
    while True:
        status = subprocess.run([POPRULES, "pop", "status", "--state", str(state)],
                                capture_output=True, text=True, check=True)
        depth, waited = json.loads(status.stdout)["outbox"]["depth"], time.monotonic() - began
        if depth == 0 or within_s is None or waited >= within_s:
            break
        time.sleep(DRAIN_POLL_S)
    target = "-" if within_s is None else f"≤ {within_s:g} s"
    return slo.Row("local PoP", "", "outbox drain", target,
                   f"{depth:,} left after {waited:.1f} s", depth == 0 or within_s is None)


def _host_verdict(rows: list[slo.Row], prefix: Path, code: int) -> int:
    missed = sum(not row.ok for row in rows)
    lines = ["Local PoP:", *slo.rows_table(rows),
             "HOST: PASS" if not missed else f"HOST: FAIL ({missed} of {len(rows)} missed)"]
    Path(f"{prefix}_host.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines), flush=True)
    return code or (1 if missed else 0)


if __name__ == "__main__":
    sys.exit(main())
