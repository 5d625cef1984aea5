"""Load profiles: the offered rate over time, as locust `LoadTestShape`s.

Each shopper offers about `REQUESTS_PER_USER_S` requests a second (users.py), so a rate is
held by a number of users: `rate / REQUESTS_PER_USER_S` shoppers, plus the fixed-count users
(the merchant on the control plane). Every profile ends by itself (`tick` returns None).

| profile | what | default rate |
|---|---|---|
| `steady` | the rate for `POPRULES_LOADTEST_DURATION` seconds (60) | 500 requests/s |
| `soak` | the rate for 30 minutes (`POPRULES_LOADTEST_DURATION` shortens it) | 500 requests/s |
| `spike` | 60 s at the rate, 30 s at 5× the rate, 60 s at the rate again | 100 requests/s |
| `smoke` | CI's: the rate for 20 s | 50 requests/s |

`POPRULES_LOADTEST_PROFILE` picks one (default `steady`) and `POPRULES_LOADTEST_RATE` sets
its rate. Locust uses the one shape class the locustfile holds, so the locustfile holds only
the chosen one (`chosen()`), and no `--class-picker` or web UI is needed to pick it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from locust import LoadTestShape

from loadtests.users import REQUESTS_PER_USER_S

PROFILE_ENV = "POPRULES_LOADTEST_PROFILE"
RATE_ENV = "POPRULES_LOADTEST_RATE"
DURATION_ENV = "POPRULES_LOADTEST_DURATION"
SPAWN_S = 2.0  # every profile reaches a stage's user count within about this many seconds
SPIKE_FACTOR = 5.0


@dataclass(frozen=True)
class Stage:
    seconds: float
    rate: float  # requests per second offered by the shoppers


class RateProfile(LoadTestShape):
    """Stages one after the other; the test stops after the last."""

    abstract: ClassVar[bool] = True
    default_rate: ClassVar[float]

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.rate = float(environ.get(RATE_ENV) or self.default_rate)
        if self.rate <= 0:
            raise ValueError(f"{RATE_ENV} must be a positive number of requests per second")
        self.stages = self.timeline(self.rate, environ)

    def timeline(self, rate: float, environ: Mapping[str, str]) -> tuple[Stage, ...]:
        raise NotImplementedError

    @property
    def seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages)

    def tick(self) -> tuple[int, float] | None:
        elapsed: float = self.get_run_time()  # type: ignore[no-untyped-call]
        for stage in self.stages:
            if elapsed < stage.seconds:
                shoppers = max(1, math.ceil(stage.rate / REQUESTS_PER_USER_S))
                users = shoppers + self._fixed_users()
                return users, max(1.0, users / SPAWN_S)
            elapsed -= stage.seconds
        return None

    def _fixed_users(self) -> int:
        """Users locust places before the weighted ones (the merchant), so the shoppers'
        count, and thereby the rate, is what the stage says."""
        if self.runner is None:
            return 0
        return sum(getattr(cls, "fixed_count", 0) for cls in self.runner.user_classes)


def _duration(environ: Mapping[str, str], default: float) -> float:
    seconds = float(environ.get(DURATION_ENV) or default)
    if seconds <= 0:
        raise ValueError(f"{DURATION_ENV} must be a positive number of seconds")
    return seconds


class Steady(RateProfile):
    default_rate = 500.0

    def timeline(self, rate: float, environ: Mapping[str, str]) -> tuple[Stage, ...]:
        return (Stage(_duration(environ, 60.0), rate),)


class Soak(RateProfile):
    """Long enough for slow leaks (memory, an outbox that does not drain) to show."""

    default_rate = 500.0

    def timeline(self, rate: float, environ: Mapping[str, str]) -> tuple[Stage, ...]:
        return (Stage(_duration(environ, 30 * 60.0), rate),)


class Spike(RateProfile):
    """A flash sale: the rate jumps to 5× for 30 s, then falls back; the recovery is judged
    with the rest."""

    default_rate = 100.0

    def timeline(self, rate: float, environ: Mapping[str, str]) -> tuple[Stage, ...]:
        return (Stage(60.0, rate), Stage(30.0, rate * SPIKE_FACTOR), Stage(60.0, rate))


class Smoke(RateProfile):
    default_rate = 50.0

    def timeline(self, rate: float, environ: Mapping[str, str]) -> tuple[Stage, ...]:
        return (Stage(_duration(environ, 20.0), rate),)


PROFILES: dict[str, type[RateProfile]] = {
    "steady": Steady, "soak": Soak, "spike": Spike, "smoke": Smoke}


def profile_name(environ: Mapping[str, str] = os.environ) -> str:
    name = environ.get(PROFILE_ENV) or "steady"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def chosen(environ: Mapping[str, str] = os.environ) -> type[RateProfile]:
    return PROFILES[profile_name(environ)]
