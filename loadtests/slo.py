"""SLO verdicts: the objectives of slo.toml against what a run measured, as a table, and the
run's exit code (non-zero when any objective is missed).

Locust keeps response times rounded to whole milliseconds below 100 ms, which cannot judge a
2 ms objective; so every request is also recorded here, in log-spaced buckets 1% wide (a
percentile is off by at most 0.5%), and under `--processes` each load process sends its
buckets to the master with its stats reports, where they are merged. Requests of the first
`warmup_s` seconds of a load process are left out of the verdicts (not out of locust's own
CSV and HTML reports).
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner

CONFIG = Path(__file__).with_name("slo.toml")
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
RESOLUTION = math.log(1.01)  # bucket width: 1% of the value
REPORT_KEY = "poprules_slo"  # in a worker's stats report to the master
FAILED_EXIT_CODE = 1


# --- objectives -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """One endpoint's objectives; None: not judged."""

    endpoint: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_ratio: float | None = None
    min_requests: int = 0


@dataclass(frozen=True)
class Objectives:
    profile: str
    warmup_s: float
    error_ratio: float  # of all requests
    endpoints: tuple[Objective, ...]
    memory_growth: float | None = None  # of a local PoP's memory after the warm-up
    outbox_drain_s: float | None = None  # for a local PoP's receipts to be uploaded


_ENDPOINT_KEYS = frozenset({"p50_ms", "p95_ms", "p99_ms", "error_ratio", "min_requests"})
_RUN_KEYS = frozenset({"warmup_s", "error_ratio", "memory_growth", "outbox_drain_s"})


def load(profile: str, path: Path = CONFIG) -> Objectives:
    """The objectives for `profile`: the defaults, with that profile's table over them. An
    unknown key is an error, so a typo cannot silently drop an objective."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    override = data.get("profiles", {}).get(profile, {})
    run = {**data.get("run", {}), **override.get("run", {})}
    _known(run, _RUN_KEYS, "run")
    endpoints: dict[str, dict[str, Any]] = {}
    for table in (data.get("endpoints", {}), override.get("endpoints", {})):
        for name, values in table.items():
            _known(values, _ENDPOINT_KEYS, f"endpoints.{name!r}")
            endpoints[name] = {**endpoints.get(name, {}), **values}
    memory, drain = run.get("memory_growth"), run.get("outbox_drain_s")
    return Objectives(profile=profile, warmup_s=float(run.get("warmup_s", 0.0)),
                      error_ratio=float(run.get("error_ratio", 0.0)),
                      endpoints=tuple(Objective(name, **values)
                                      for name, values in endpoints.items()),
                      memory_growth=None if memory is None else float(memory),
                      outbox_drain_s=None if drain is None else float(drain))


def _known(table: Mapping[str, Any], keys: frozenset[str], where: str) -> None:
    unknown = set(table) - keys
    if unknown:
        raise ValueError(f"slo.toml [{where}]: unknown key(s) {sorted(unknown)}; "
                         f"expected {sorted(keys)}")


# --- measurements ---------------------------------------------------------------------------


@dataclass
class Series:
    """One endpoint's judged requests: latency buckets, counts, and when they were made."""

    buckets: Counter[int] = field(default_factory=Counter)
    requests: int = 0
    failures: int = 0
    first: float = math.inf
    last: float = -math.inf

    def add(self, ms: float, failed: bool, at: float) -> None:
        self.buckets[round(math.log(max(ms, 0.001)) / RESOLUTION)] += 1
        self.requests += 1
        self.failures += failed
        self.first, self.last = min(self.first, at), max(self.last, at)

    def merge(self, other: Series) -> None:
        self.buckets.update(other.buckets)
        self.requests += other.requests
        self.failures += other.failures
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)

    def percentile(self, q: float) -> float | None:
        """The nearest-rank percentile, in ms (None without requests)."""
        total = sum(self.buckets.values())
        if not total:
            return None
        rank, seen = max(1, math.ceil(q * total)), 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return math.exp(key * RESOLUTION)
        raise AssertionError("unreachable: the ranks add up to the total")

    def to_wire(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets.items()), "requests": self.requests,
                "failures": self.failures, "first": self.first, "last": self.last}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Series:
        return cls(Counter({int(k): int(n) for k, n in data["buckets"]}), data["requests"],
                   data["failures"], data["first"], data["last"])


@dataclass
class Recorder:
    """Every request of this load process after its warm-up, by endpoint."""

    warmup_s: float
    series: dict[str, Series] = field(default_factory=dict)
    started: float | None = None

    def on_request(self, request_type: str, name: str, response_time: float | None,
                   exception: BaseException | None = None, **_: Any) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if now - self.started < self.warmup_s:
            return
        series = self.series.setdefault(f"{request_type} {name}", Series())
        series.add(response_time or 0.0, exception is not None, time.time())

    def drain(self) -> dict[str, Any]:
        """What this worker recorded since its last report (then forgotten here)."""
        sent = {name: series.to_wire() for name, series in self.series.items()}
        self.series = {}
        return sent

    def merge(self, report: Mapping[str, Any] | None) -> None:
        for name, data in (report or {}).items():
            self.series.setdefault(name, Series()).merge(Series.from_wire(data))


# --- verdicts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    endpoint: str
    rate: str  # the endpoint's judged requests per second
    objective: str  # "p99", "error ratio", ...
    target: str
    measured: str
    ok: bool


@dataclass(frozen=True)
class Verdict:
    objectives: Objectives
    rows: tuple[Row, ...]
    requests: int
    seconds: float

    @property
    def passed(self) -> bool:
        return all(row.ok for row in self.rows)

    def table(self) -> str:
        rate = self.requests / self.seconds if self.seconds > 0 else 0.0
        missed = sum(not row.ok for row in self.rows)
        return "\n".join([
            (f"SLO verdicts, profile {self.objectives.profile}: {self.requests:,} requests "
             f"judged over {self.seconds:.1f} s ({rate:,.1f}/s), after a "
             f"{self.objectives.warmup_s:g} s warm-up"),
            *rows_table(self.rows),
            (f"VERDICT: PASS ({len(self.rows)} objectives met)" if not missed else
             f"VERDICT: FAIL ({missed} of {len(self.rows)} objectives missed)")])

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.objectives.profile, "passed": self.passed,
                "requests": self.requests, "seconds": self.seconds,
                "rows": [vars(row) for row in self.rows]}


def rows_table(rows: Iterable[Row]) -> list[str]:
    """A header and a line per row; an endpoint's name and rate on its first row only."""
    lines = [(f"{'endpoint':<56} {'req/s':>7}  {'objective':<13} {'target':>11} "
              f"{'measured':>22}  verdict")]
    previous = None
    for row in rows:
        first = row.endpoint != previous
        previous = row.endpoint
        lines.append(f"{row.endpoint if first else '':<56} {row.rate if first else '':>7}  "
                     f"{row.objective:<13} {row.target:>11} {row.measured:>22}  "
                     f"{'pass' if row.ok else 'MISSED'}")
    return lines


def judge(objectives: Objectives, series: Mapping[str, Series], *,
          user_exceptions: int = 0) -> Verdict:
    """Every objective against the measurements: an endpoint with fewer requests than its
    `min_requests` misses; one without requests and no minimum is shown and not judged."""
    rows: list[Row] = []
    seen = Series()
    for one in series.values():
        seen.merge(one)
    seconds = max(seen.last - seen.first, 0.0) if seen.requests else 0.0

    def rate(requests: int) -> str:
        return f"{requests / seconds:,.0f}" if seconds > 0 else "-"

    for objective in objectives.endpoints:
        measured = series.get(objective.endpoint, Series())
        name, per_s = objective.endpoint, rate(measured.requests)
        if measured.requests < max(objective.min_requests, 1):
            rows.append(Row(name, per_s, "requests", f"≥ {objective.min_requests:,}",
                            f"{measured.requests:,}", measured.requests >= objective.min_requests))
            continue
        for label, q in PERCENTILES:
            target = getattr(objective, f"{label}_ms")
            value = measured.percentile(q)
            if target is not None and value is not None:
                rows.append(Row(name, per_s, label, f"≤ {_ms(target)}", _ms(value),
                                value <= target))
        if objective.error_ratio is not None:
            rows.append(_errors(name, per_s, measured, objective.error_ratio))
    for name in sorted(set(series) - {o.endpoint for o in objectives.endpoints}):
        p99 = series[name].percentile(0.99)
        rows.append(Row(name, rate(series[name].requests), "p99", "-", _ms(p99 or 0.0), True))
    rows.append(_errors("all requests", rate(seen.requests), seen, objectives.error_ratio))
    rows.append(Row("all requests", "", "requests", "≥ 1", f"{seen.requests:,}",
                    seen.requests > 0))
    rows.append(Row("all requests", "", "exceptions", "0", f"{user_exceptions:,}",
                    user_exceptions == 0))
    return Verdict(objectives, tuple(rows), seen.requests, seconds)


def _errors(endpoint: str, rate: str, series: Series, allowed: float) -> Row:
    ratio = series.failures / series.requests if series.requests else 0.0
    return Row(endpoint, rate, "error ratio", f"≤ {allowed:g}",
               f"{ratio:.2%} ({series.failures:,})", ratio <= allowed)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.2f} ms"


# --- locust wiring --------------------------------------------------------------------------


def install(events: Events, profile: str, path: Path = CONFIG) -> Recorder:
    """Record every request, ship a worker's records to the master, and on quitting (master
    or a single process) print the verdict table, write it next to the CSV reports
    (`<prefix>_slo.txt` and `.json`) and set the exit code: 1 when anything was missed."""
    objectives = load(profile, path)
    recorder = Recorder(objectives.warmup_s)
    events.request.add_listener(recorder.on_request)  # type: ignore[no-untyped-call]

    def report(client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = recorder.drain()

    def received(client_id: str, data: dict[str, Any]) -> None:
        recorder.merge(data.get(REPORT_KEY))

    def quitting(environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        exceptions = 0 if environment.runner is None else len(environment.runner.exceptions)
        verdict = judge(objectives, recorder.series, user_exceptions=exceptions)
        print("\n" + verdict.table(), flush=True)
        prefix = getattr(environment.parsed_options, "csv_prefix", None)
        if prefix:
            write(verdict, prefix)
        environment.process_exit_code = 0 if verdict.passed else FAILED_EXIT_CODE

    events.report_to_master.add_listener(report)  # type: ignore[no-untyped-call]
    events.worker_report.add_listener(received)  # type: ignore[no-untyped-call]
    events.quitting.add_listener(quitting)  # type: ignore[no-untyped-call]
    return recorder


def write(verdict: Verdict, prefix: str) -> tuple[Path, Path]:
    """The table and its JSON, named after locust's CSV files (`<prefix>_stats.csv`...)."""
    text, data = Path(f"{prefix}_slo.txt"), Path(f"{prefix}_slo.json")
    text.write_text(verdict.table() + "\n", encoding="utf-8")
    data.write_text(json.dumps(verdict.to_json(), indent=1) + "\n", encoding="utf-8")
    return text, data
