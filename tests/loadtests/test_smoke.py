"""The load-test suite (loadtests/): CI's smoke run against a local control plane and PoP,
which must pass its verdicts, and the parts a verdict rests on — the carts, the objectives and
their judgement, the exit code, the load profiles."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from argparse import Namespace
from collections import Counter
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# Importing locust monkey-patches the standard library for gevent (sockets, threads, ssl),
# which would change every other test sharing this process; the parts tested here need none
# of it. Only the import sees the switch: the smoke run's locust is patched as it should be.
_SKIP = "LOCUST_SKIP_MONKEY_PATCH"
_skipping = os.environ.get(_SKIP)
os.environ[_SKIP] = "1"
try:
    import locust  # noqa: F401 - the first import of locust is the one that patches
finally:
    if _skipping is None:
        del os.environ[_SKIP]

from locust.env import Environment
from locust.event import Events

from loadtests import shapes, slo
from loadtests.carts import MAX_LINES, ONLINE, STALL, UNKNOWN_CODES, CartMaker, Sources, Workload
from loadtests.users import MerchantPublisher
from poprules.codes import normalize_code
from tests.conftest import ROOT
from wasm_build.random_program import generate_program

WORKLOAD = Workload(skus=tuple(f"SKU-{n}" for n in range(2000)), codes=("SUMMER-24", "VIP"),
                    customer_tokens=("token-a", "token-b"))


# --- the smoke run --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_smoke_profile_passes_its_verdicts_against_a_local_stack(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "loadtests.run", "--profile", "smoke",
                           "--reports", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "VERDICT: PASS" in done.stdout
    verdict = json.loads((tmp_path / "smoke_slo.json").read_text())
    assert verdict["passed"] and verdict["profile"] == "smoke"
    judged = {(row["endpoint"], row["objective"]) for row in verdict["rows"]}
    for endpoint in ("POST /v1/quote", "POST /v1/coupons/validate", "POST /v1/checkout"):
        assert (endpoint, "p99") in judged, endpoint  # had requests, so it was judged
    stats = (tmp_path / "smoke_stats.csv").read_text()
    assert "/v1/quote" in stats and "/v1/checkout" in stats
    assert (tmp_path / "smoke.html").stat().st_size > 0


# --- carts ----------------------------------------------------------------------------------


def test_carts_are_a_function_of_the_seed() -> None:
    def carts(seed: str) -> list[object]:
        maker = CartMaker(WORKLOAD, seed)
        return [maker.cart(ONLINE) for _ in range(50)]

    assert carts("1/browser/0/7") == carts("1/browser/0/7")
    assert carts("1/browser/0/7") != carts("1/browser/0/8")


def test_cart_sizes_run_from_1_to_60_lines_skewed_to_small() -> None:
    maker = CartMaker(WORKLOAD, "sizes")
    sizes = [len(maker.cart(ONLINE).body["lines"]) for _ in range(5000)]
    assert min(sizes) == 1 and max(sizes) <= MAX_LINES
    assert statistics.median(sizes) == 4
    assert 0.08 < sizes.count(1) / len(sizes) < 0.2
    assert 0.02 < sum(size > 20 for size in sizes) / len(sizes) < 0.1  # the long tail
    assert statistics.mean(sizes) > statistics.median(sizes)


def test_carts_follow_their_mix() -> None:
    maker = CartMaker(WORKLOAD, "mix")
    online = [maker.cart(ONLINE) for _ in range(4000)]
    till = [maker.cart(STALL) for _ in range(4000)]
    assert {c.body["channel"] for c in online} == {"web", "app"}
    assert {c.body["fulfillment"] for c in online} == {"pickup", "delivery"}
    assert {c.body["channel"] for c in till} == {"pos"}
    coupons = [c.body["coupons"] for c in online if "coupons" in c.body]
    assert 0.2 < len(coupons) / len(online) < 0.3
    codes = Counter(code for (code,) in coupons)
    assert set(codes) <= set(WORKLOAD.codes) | set(UNKNOWN_CODES)
    assert 0.7 < sum(codes[c] for c in WORKLOAD.codes) / len(coupons) < 0.9
    known = [c for c in online if c.token is not None]
    assert 0.55 < len(known) / len(online) < 0.65
    assert all(c.headers == {"X-Poprules-Customer": c.token} for c in known)
    assert {c.token for c in known} == set(WORKLOAD.customer_tokens)
    assert 0.25 < sum(c.token is not None for c in till) / len(till) < 0.35
    for cart in online[:200]:  # a PoP refuses what it decides itself
        assert not {"customer", "at", "spent_coupons", "pop"} & set(cart.body)
        skus = [line["sku"] for line in cart.body["lines"]]
        assert len(set(skus)) == len(skus)


def test_a_browsing_cart_grows_by_a_new_sku_and_a_scan_is_a_prefix() -> None:
    maker = CartMaker(WORKLOAD, "grow")
    cart = maker.cart(ONLINE)
    grown = maker.add_line(cart)
    assert grown.body["lines"][:-1] == cart.body["lines"]
    assert grown.body["lines"][-1]["sku"] not in {line["sku"] for line in cart.body["lines"]}
    assert grown.first(1).body["lines"] == cart.body["lines"][:1]
    assert grown.first(1).token == cart.token


def test_the_workload_is_read_from_the_release_sources(tmp_path: Path) -> None:
    generated = generate_program(3)
    sources = Sources(generated.program_yaml, "yaml", generated.catalog_json, "json")
    workload = Workload.from_sources(sources, customer_tokens=["t"], merchant=4, version=2)
    catalog = json.loads(generated.catalog_json)["items"]
    assert workload.skus == tuple(item["sku"] for item in catalog)
    assert set(workload.codes) == {normalize_code(c) for c in generated.vocabulary.codes}
    workload.dump(tmp_path / "w.json")
    assert Workload.load(tmp_path / "w.json") == workload


# --- objectives and verdicts ----------------------------------------------------------------


def test_a_profile_overrides_the_default_objectives_key_by_key() -> None:
    default, smoke = slo.load("steady"), slo.load("smoke")
    quote = {o.endpoint: o for o in default.endpoints}["POST /v1/quote"]
    assert (quote.p50_ms, quote.p99_ms, quote.error_ratio) == (2.0, 5.0, 0.0)
    smoke_quote = {o.endpoint: o for o in smoke.endpoints}["POST /v1/quote"]
    assert smoke_quote.p99_ms == 100.0 and smoke_quote.error_ratio == 0.0
    assert smoke.warmup_s == 3.0 and default.warmup_s == 5.0


def test_an_unknown_objective_key_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "slo.toml"
    config.write_text('[endpoints."POST /v1/quote"]\np99 = 5\n')
    with pytest.raises(ValueError, match="unknown key"):
        slo.load("steady", config)


def test_percentiles_are_within_one_percent() -> None:
    series = slo.Series()
    for n in range(1, 1001):
        series.add(n / 100, failed=False, at=float(n))
    for q, exact in ((0.5, 5.0), (0.95, 9.5), (0.99, 9.9)):
        value = series.percentile(q)
        assert value is not None and abs(value - exact) / exact < 0.01
    assert slo.Series().percentile(0.5) is None


def _objectives(all_errors: float = 0.0, **quote: Any) -> slo.Objectives:
    return slo.Objectives("test", 0.0, all_errors, (slo.Objective("POST /v1/quote", **quote),))


def _series(latencies_ms: list[float], failures: int = 0) -> dict[str, slo.Series]:
    series = slo.Series()
    for n, ms in enumerate(latencies_ms):
        series.add(ms, failed=n < failures, at=float(n))
    return {"POST /v1/quote": series}


def test_a_missed_percentile_fails_the_verdict() -> None:
    measured = _series([1.0] * 98 + [9.0] * 2)
    assert slo.judge(_objectives(p50_ms=2.0, p95_ms=4.0), measured).passed
    verdict = slo.judge(_objectives(p50_ms=2.0, p99_ms=5.0), measured)
    assert not verdict.passed
    missed = [(row.endpoint, row.objective) for row in verdict.rows if not row.ok]
    assert missed == [("POST /v1/quote", "p99")]
    assert "VERDICT: FAIL (1 of" in verdict.table() and "MISSED" in verdict.table()


def test_errors_and_too_few_requests_fail_the_verdict() -> None:
    assert not slo.judge(_objectives(error_ratio=0.0), _series([1.0] * 10, failures=1)).passed
    assert not slo.judge(_objectives(error_ratio=0.2), _series([1.0] * 10, failures=1)).passed
    assert slo.judge(_objectives(0.2, error_ratio=0.2), _series([1.0] * 10, failures=1)).passed
    assert not slo.judge(_objectives(min_requests=11), _series([1.0] * 10)).passed
    assert not slo.judge(_objectives(p99_ms=5.0), {}).passed  # nothing measured at all
    assert not slo.judge(_objectives(), _series([1.0]), user_exceptions=1).passed


def _quit(profile: str, config: Path, latencies_ms: list[float],
          csv_prefix: str | None = None) -> Environment:
    """A locust environment with the SLO listeners: requests fired, then quitting."""
    environment = Environment(events=Events())  # type: ignore[no-untyped-call]
    environment.parsed_options = Namespace(csv_prefix=csv_prefix)
    environment.create_local_runner()
    slo.install(environment.events, profile, config)
    for ms in latencies_ms:
        environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type="POST", name="/v1/quote", response_time=ms, response_length=10,
            exception=None, context={})
    environment.events.quitting.fire(environment=environment)  # type: ignore[no-untyped-call]
    return environment


def test_quitting_sets_a_non_zero_exit_code_when_an_objective_is_missed(tmp_path: Path) -> None:
    config = tmp_path / "slo.toml"
    config.write_text('[run]\nwarmup_s = 0\n[endpoints."POST /v1/quote"]\np99_ms = 5.0\n')
    assert _quit("steady", config, [1.0] * 200).process_exit_code == 0
    assert _quit("steady", config, [1.0] * 190 + [50.0] * 10).process_exit_code == 1
    _quit("steady", config, [50.0] * 10, csv_prefix=str(tmp_path / "run"))
    assert "VERDICT: FAIL" in (tmp_path / "run_slo.txt").read_text()
    assert json.loads((tmp_path / "run_slo.json").read_text())["passed"] is False


def test_requests_of_the_warm_up_are_not_judged(tmp_path: Path) -> None:
    config = tmp_path / "slo.toml"
    config.write_text('[run]\nwarmup_s = 3600\n[endpoints."POST /v1/quote"]\np99_ms = 5.0\n')
    assert _quit("steady", config, [50.0] * 10).process_exit_code == 1  # none judged


def test_a_workers_records_reach_the_master() -> None:
    worker, master = slo.Recorder(0.0), slo.Recorder(0.0)
    for ms in (1.0, 2.0, 3.0):
        worker.on_request("POST", "/v1/quote", ms)
    worker.on_request("POST", "/v1/checkout", 4.0, exception=RuntimeError("503"))
    master.merge(json.loads(json.dumps(worker.drain())))  # what a stats report carries
    assert worker.series == {}
    assert master.series["POST /v1/quote"].requests == 3
    assert master.series["POST /v1/checkout"].failures == 1


# --- load profiles --------------------------------------------------------------------------


def _ticks(shape: shapes.RateProfile, *seconds: float) -> list[tuple[int, float] | None]:
    ticks = []
    for at in seconds:
        shape.get_run_time = partial(float, at)  # type: ignore[method-assign]
        ticks.append(shape.tick())
    return ticks


def test_steady_holds_the_rate_for_its_duration() -> None:
    steady = shapes.Steady({shapes.RATE_ENV: "500", shapes.DURATION_ENV: "30"})
    assert _ticks(steady, 0, 29.9, 30.0) == [(100, 50.0), (100, 50.0), None]
    assert _ticks(shapes.Steady({}), 59.0, 60.0) == [(100, 50.0), None]  # 500/s for 60 s


def test_the_soak_runs_30_minutes_and_the_spike_5x_for_30_seconds() -> None:
    assert _ticks(shapes.Soak({}), 0, 1799, 1800) == [(100, 50.0), (100, 50.0), None]
    spike = shapes.Spike({shapes.RATE_ENV: "200"})
    users = [tick[0] if tick else None for tick in _ticks(spike, 0, 59, 60, 89, 90, 149, 150)]
    assert users == [40, 40, 200, 200, 40, 40, None]
    assert _ticks(shapes.Smoke({}), 0, 20) == [(10, 5.0), None]


def test_fixed_count_users_come_on_top_of_the_shoppers() -> None:
    steady = shapes.Steady({shapes.RATE_ENV: "100"})
    steady.runner = SimpleNamespace(user_classes=[MerchantPublisher])  # type: ignore[assignment]
    assert _ticks(steady, 1) == [(21, 10.5)]


def test_the_profile_is_picked_by_name() -> None:
    assert shapes.chosen({}) is shapes.Steady
    assert shapes.chosen({shapes.PROFILE_ENV: "spike"}) is shapes.Spike
    with pytest.raises(ValueError, match="expected one of"):
        shapes.chosen({shapes.PROFILE_ENV: "ramp"})
