"""A small Prometheus registry: counters, gauges and latency histograms, written in the text
exposition format (version 0.0.4) that `GET /metrics` serves.

Why not prometheus_client (which issue 6 names): the PoP core must import under Pyodide (the
Cloudflare worker) with the standard library and msgpack only, and the few metric kinds a PoP
needs fit in this file with the same output. Thread-safe: a host serves requests from several
threads; every update holds the registry's lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; a quote takes well under a millisecond, a checkout adds one durable write.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

Labels = tuple[str, ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def _series(name: str, names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return name
    pairs = ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return f"{name}{{{pairs}}}"


class _Metric:
    kind = ""

    def __init__(self, registry: Registry, name: str, help_text: str,
                 labels: Sequence[str]) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self._lock = registry.lock
        registry.register(self)

    def _key(self, values: Sequence[str]) -> Labels:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes the labels {', '.join(self.labels) or 'none'}")
        return tuple(values)

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, registry: Registry, name: str, help_text: str,
                 labels: Sequence[str] = ()) -> None:
        super().__init__(registry, name, help_text, labels)
        self._values: dict[Labels, float] = {} if self.labels else {(): 0.0}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            values = sorted(self._values.items())
        return [f"{_series(self.name, self.labels, key)} {_number(value)}"
                for key, value in values]


class Gauge(_Metric):
    """A value read when the registry renders (`source`), so it is never stale: the release
    number and the outbox depth belong to the host, not to this registry."""

    kind = "gauge"

    def __init__(self, registry: Registry, name: str, help_text: str,
                 source: Callable[[], float]) -> None:
        super().__init__(registry, name, help_text, ())
        self._source = source

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self._source())}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, registry: Registry, name: str, help_text: str,
                 labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        if "le" in labels:
            raise ValueError("le is the bucket label")
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets are distinct and increasing")
        super().__init__(registry, name, help_text, labels)
        self.buckets = (*buckets, math.inf)
        self._counts: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * len(self.buckets))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, *labels: str) -> int:
        with self._lock:
            return self._counts.get(self._key(labels), [0])[-1]

    def samples(self) -> list[str]:
        with self._lock:
            state = [(key, list(counts), self._sums[key])
                     for key, counts in sorted(self._counts.items())]
        lines = []
        names = (*self.labels, "le")
        for key, counts, total in state:
            for bound, count in zip(self.buckets, counts, strict=True):
                lines.append(f"{_series(self.name + '_bucket', names, (*key, _number(bound)))}"
                             f" {count}")
            lines.append(f"{_series(self.name + '_sum', self.labels, key)} "
                         f"{_number(total)}")
            lines.append(f"{_series(self.name + '_count', self.labels, key)} {counts[-1]}")
        return lines


class Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._metrics: list[_Metric] = []

    def register(self, metric: _Metric) -> None:
        with self.lock:
            if any(m.name == metric.name for m in self._metrics):
                raise ValueError(f"{metric.name} is registered already")
            self._metrics.append(metric)

    def render(self) -> str:
        """The exposition text; every metric, in the order registered. The lock is held only
        to copy each metric's values: a gauge's source (the outbox depth) may take its time,
        and requests must not wait on a scrape."""
        out: list[str] = []
        with self.lock:
            metrics = list(self._metrics)
        for metric in metrics:
            out.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
            out.append(f"# TYPE {metric.name} {metric.kind}")
            out.extend(metric.samples())
        return "\n".join(out) + "\n"
