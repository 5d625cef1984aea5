"""The load's users: who calls a PoP and its control plane, and how often.

- `BrowserCheckout`: an online shopper. Browses (a quote each time the cart changes), checks a
  coupon code before applying it, checks out now and then and starts a new cart.
- `PosTerminal`: a market stall's till. Customers come in queues: each one's items are scanned
  (the cart quoted as it grows) and checked out, one customer straight after the other, then
  the till is idle; now and then a line of an earlier sale is refunded.
- `MerchantPublisher`: the merchant's back office on the control plane, one of it: every 15 s
  simulates 20 carts on the release's program, and every 30 s publishes it again (upload the
  draft, build and sign a release rolled out to a group no PoP of the run is in, so the PoP
  under test keeps its release).

Shoppers offer about `REQUESTS_PER_USER_S` requests a second each whatever the latency, so a
profile sets the offered rate by the number of users rather than by how fast the PoP answers.
Their tasks start at the instants of a Poisson process (`PopUser.wait_time`): independent
shoppers do not arrive in step. (With locust's `constant_throughput`, users spawned about one
period apart stay in phase, and their requests reach the PoP in bursts that queue behind each
other: at 50 requests/s that tripled the median.) Requests are named by endpoint
(`POST /v1/quote`; the control plane's with `{merchant}` and `{version}` placeholders), which
is what the objectives name.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from locust import FastHttpUser, constant_pacing, task
from locust.exception import StopUser

from loadtests.carts import ONLINE, STALL, Cart, CartMaker, Workload
from loadtests.stack import Target, workload

POP_ENV = "POPRULES_LOADTEST_POP"
CP_ENV = "POPRULES_LOADTEST_CP"
TOKEN_ENV = "POPRULES_LOADTEST_TOKEN"
WORKLOAD_ENV = "POPRULES_LOADTEST_WORKLOAD"  # a file `Workload.dump` wrote (run.py does)
SEED_ENV = "POPRULES_LOADTEST_SEED"
CANARY_ENV = "POPRULES_LOADTEST_CANARY_GROUP"
MERCHANT_ENV = "POPRULES_LOADTEST_MERCHANT"  # "off": no MerchantPublisher

REQUESTS_PER_USER_S = 5.0
CUSTOMERS_PER_QUEUE = (1, 4)  # at the till, one after the other
SCANS = 3  # quotes as a customer's items are scanned: a third, two thirds, all of the cart
MEAN_QUEUE_REQUESTS = 8.5  # ≈ 2.5 customers × (quotes of up to SCANS prefixes + a checkout)
IDLE_CLOSE_S = 1.5  # under a 2 s keep-alive (gunicorn's default; servers close idle connections)
MAX_BEHIND_S = 1.0  # a user this late on its schedule starts a new one rather than catch up
RECENT_SALES = 20  # a till refunds lines of its latest sales
SIMULATED_CARTS = 20
PUBLISH_PACE_S = 15.0
CANARY_GROUP = "loadtest-canary"

_workload: Workload | None = None
_numbers = itertools.count()


def use_workload(chosen: Workload) -> None:
    """The workload every user of this process draws from (set once, by the locustfile)."""
    global _workload
    _workload = chosen


def workload_from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> Workload:
    """The file run.py wrote, or else the release the PoP runs, read from the control plane."""
    if environ.get(WORKLOAD_ENV):
        return Workload.load(Path(environ[WORKLOAD_ENV]))
    if not environ.get(POP_ENV):
        raise RuntimeError(f"set {POP_ENV} to the PoP's URL (or run `python -m loadtests.run`)")
    return workload(Target(environ[POP_ENV], environ.get(CP_ENV), environ.get(TOKEN_ENV)))


def _shared() -> Workload:
    if _workload is None:
        raise RuntimeError("no workload: the locustfile sets it (loadtests/locustfile.py)")
    return _workload


def _maker(user: FastHttpUser, kind: str) -> CartMaker:
    """A cart stream of its own per user: the seed, the kind, the load process (its index
    under --processes) and the user's number in that process."""
    worker = getattr(user.environment.runner, "worker_index", 0)
    seed = os.environ.get(SEED_ENV, "1")
    return CartMaker(_shared(), f"{seed}/{kind}/{worker}/{next(_numbers)}")


class PopUser(FastHttpUser):
    """A client of the PoP, on a kept-alive connection that it closes itself before a pause
    longer than IDLE_CLOSE_S. The PoP's server closes connections idle for 2 s, and a POST
    sent just as it does fails ("connection closed") and must not be sent again (it may be a
    sale): that race is the client's to avoid, as HTTP clients do with an idle timeout shorter
    than the server's, not an error of the PoP."""

    abstract = True
    host = os.environ.get(POP_ENV)
    tasks_per_s: ClassVar[float]
    carts: CartMaker

    def wait_time(self) -> float:
        seconds = self._poisson_wait()
        if seconds > IDLE_CLOSE_S:
            self.client.client.close()  # the next request opens a new connection
        return seconds

    def _poisson_wait(self) -> float:
        """Until the next instant of a Poisson process of `tasks_per_s` (exponential gaps,
        kept on schedule whatever a task took; drawn from the user's own seed)."""
        now = time.monotonic()
        if not hasattr(self, "pace"):
            self.pace = random.Random(f"pace/{self.carts.seed}")
            self.next_start = now
        due = self.next_start + self.pace.expovariate(self.tasks_per_s)
        self.next_start = due if due > now - MAX_BEHIND_S else now
        return max(0.0, due - now)


class BrowserCheckout(PopUser):
    weight = 3
    tasks_per_s = REQUESTS_PER_USER_S

    def on_start(self) -> None:
        self.carts = _maker(self, "browser")
        self.cart = self.carts.cart(ONLINE)

    @task(12)
    def browse(self) -> None:
        """Quote the cart, then maybe add to it: the next quote sees one more line."""
        self.client.post("/v1/quote", json=self.cart.body, headers=self.cart.headers,
                         name="/v1/quote")
        if self.carts.rng.random() < 0.5:
            self.cart = self.carts.add_line(self.cart)

    @task(2)
    def validate_coupon(self) -> None:
        body = {"code": self.carts.code(), "lines": self.cart.body["lines"],
                "channel": self.cart.body["channel"],
                "fulfillment": self.cart.body["fulfillment"]}
        self.client.post("/v1/coupons/validate", json=body, headers=self.cart.headers,
                         name="/v1/coupons/validate")

    @task(1)
    def checkout(self) -> None:
        self.client.post("/v1/checkout", json=self.cart.body, headers=self.cart.headers,
                         name="/v1/checkout")
        self.cart = self.carts.cart(ONLINE)


@dataclass
class Sale:
    receipt: str
    unrefunded: list[int]  # line indices


class PosTerminal(PopUser):
    weight = 1
    # A queue is about MEAN_QUEUE_REQUESTS requests sent back to back, then the till waits.
    tasks_per_s = REQUESTS_PER_USER_S / MEAN_QUEUE_REQUESTS

    def on_start(self) -> None:
        self.carts = _maker(self, "till")
        self.sales: deque[Sale] = deque(maxlen=RECENT_SALES)

    @task(10)
    def serve_queue(self) -> None:
        for _ in range(self.carts.rng.randint(*CUSTOMERS_PER_QUEUE)):
            cart = self.carts.cart(STALL)
            self._serve(cart)

    def _serve(self, cart: Cart) -> None:
        size = len(cart.body["lines"])
        for count in sorted({-(-size * k // SCANS) for k in range(1, SCANS + 1)}):
            scanned = cart.first(count)
            self.client.post("/v1/quote", json=scanned.body, headers=scanned.headers,
                             name="/v1/quote")
        with self.client.post("/v1/checkout", json=cart.body, headers=cart.headers,
                              name="/v1/checkout", catch_response=True) as response:
            if response.status_code == 201:
                self.sales.append(Sale(response.json()["receipt"]["id"], list(range(size))))

    @task(1)
    def refund(self) -> None:
        """A line of a recent sale comes back; a sale whose lines all came back is dropped."""
        if not self.sales:
            return
        sale = self.carts.rng.choice(self.sales)
        line = sale.unrefunded.pop(self.carts.rng.randrange(len(sale.unrefunded)))
        if not sale.unrefunded:
            self.sales.remove(sale)
        self.client.post("/v1/refunds", json={"receipt": sale.receipt, "lines": [line]},
                         name="/v1/refunds")


class MerchantPublisher(FastHttpUser):
    host = os.environ.get(CP_ENV)
    fixed_count = 1
    wait_time = constant_pacing(PUBLISH_PACE_S)

    def on_start(self) -> None:
        """Only with a control plane to call and the release's sources to publish again, and
        unless left out (POPRULES_LOADTEST_MERCHANT=off: the PoP's figures without a control
        plane building releases on the same machine)."""
        shared = _shared()
        token = os.environ.get(TOKEN_ENV)
        wanted = os.environ.get(MERCHANT_ENV, "on") != "off"
        if not (wanted and self.host and token and shared.sources and shared.merchant
                and shared.version):
            raise StopUser()
        self.workload, self.sources = shared, shared.sources
        self.base = f"{self.host.rstrip('/')}/v1/merchants/{shared.merchant}"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.canary = os.environ.get(CANARY_ENV, CANARY_GROUP)
        self.carts = _maker(self, "merchant")
        self.rounds = 0

    @task
    def back_office(self) -> None:
        """Every PUBLISH_PACE_S: simulate carts; every other time, publish as well (first at
        the second round, after the warm-up, so even CI's smoke run judges one publish)."""
        self.simulate()
        self.rounds += 1
        if self.rounds % 2 == 0:
            self.publish()
        self.client.client.close()  # idle until the next round: longer than a keep-alive

    def simulate(self) -> None:
        requests = [self.carts.cart(self.carts.rng.choice((ONLINE, STALL))).body
                    for _ in range(SIMULATED_CARTS)]
        self.client.post(f"{self.base}/versions/{self.workload.version}/simulate",
                         json={"requests": requests}, headers=self.headers,
                         name="/v1/merchants/{merchant}/versions/{version}/simulate")

    def publish(self) -> None:
        """The program again as a new draft, then released to the canary group."""
        draft: dict[str, Any] = {"program": self.sources.program,
                                 "program_format": self.sources.program_format,
                                 "catalog": self.sources.catalog,
                                 "catalog_format": self.sources.catalog_format}
        with self.client.post(f"{self.base}/versions", json=draft, headers=self.headers,
                              name="/v1/merchants/{merchant}/versions",
                              catch_response=True) as made:
            if made.status_code != 201:
                return
            number = made.json()["number"]
        self.client.post(f"{self.base}/releases", json={"version": number, "group": self.canary},
                         headers=self.headers, name="/v1/merchants/{merchant}/releases")
