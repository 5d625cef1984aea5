"""The system under test: a local control plane and PoP started for the run, or hosts already
running somewhere else; and the workload (catalog, codes, shoppers) read from the release the
PoP runs.

The local stack is the one `make demo` and `make bench` start, as real processes over loopback:
`poprules cp serve` (SQLite, 2 workers) publishes a generated program of a merchant's realistic
size (100 rules over a 2,000-sku catalog), and a PoP enrolled with a one-time token
(`poprules pop serve --threads 2`) pulls it. The PoP's clock is set to the instant the
program's schedules are built around, so its dated rules are as active as a shop's would be.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.carts import Sources, Workload
from wasm_build.random_program import generate_program

POPRULES = str(Path(sys.executable).with_name("poprules"))
PROGRAM_SEED, RULES, ITEMS = 17, 100, 2000  # bench/pop.py's program
POP_NAME = "lisbon-1"  # a PoP name the generated programs' rules know
CP_WORKERS, POP_THREADS = 2, 2  # POP_THREADS: `poprules pop serve`'s default
SHOPPERS = 32  # customer tokens issued for the run's known shoppers
TOKEN_TTL_S = 86_400  # the longest a control plane issues: a soak outlives the default 900 s
TIERS = ("", "bronze", "silver", "gold")
START_TIMEOUT_S, STOP_TIMEOUT_S = 60.0, 20.0


class StackError(RuntimeError):
    """The system under test could not be started or read."""


@dataclass(frozen=True)
class Target:
    """Where the load goes: a PoP, and the control plane (with a merchant token) that the
    workload is read from and the merchant's calls go to."""

    pop: str
    control_plane: str | None
    token: str | None
    pop_pid: int | None = None  # a PoP started here: its server process and state directory
    pop_state: Path | None = None


def call(method: str, url: str, body: Any = None, token: str | None = None, *,
         timeout: float = 60.0, raw: bool = False) -> Any:
    """The JSON answer (the bytes with `raw`); an error status is a StackError naming it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content = response.read()
    except urllib.error.HTTPError as error:
        with error:
            detail = error.read().decode(errors="replace")[:300]
        raise StackError(f"{method} {url}: {error.code} {detail}") from None
    return content if raw else json.loads(content or b"null")


def workload(target: Target, *, shoppers: int = SHOPPERS) -> Workload:
    """The skus and codes of the release the PoP runs now, from its version's sources, and
    customer tokens for `shoppers` known shoppers when the token may issue them (publish
    scope; otherwise every shopper is anonymous)."""
    if not (target.control_plane and target.token):
        raise StackError("the carts are made from the release the PoP runs: set "
                         "POPRULES_LOADTEST_CP and POPRULES_LOADTEST_TOKEN (a merchant token "
                         "with the read scope) as well as POPRULES_LOADTEST_POP")
    served = call("GET", f"{target.pop}/v1/release")
    if served["release"] is None:
        raise StackError(f"the PoP at {target.pop} has no release yet")
    cp, token = target.control_plane.rstrip("/"), target.token
    base = f"{cp}/v1/merchants/{served['merchant']}"
    release = call("GET", f"{base}/releases/{served['release']['number']}", token=token)
    version = call("GET", f"{base}/versions/{release['version']}", token=token)
    sources = version["sources"]
    tokens: list[str] = []
    try:
        for n in range(shoppers):
            issued = call("POST", f"{cp}/v1/customer-tokens", {
                "customer": {"tier": TIERS[n % len(TIERS)], "orders": n % 7,
                             "tags": ["vip"] if n % 5 == 0 else []},
                "subject": f"loadtest-shopper-{n}", "ttl": TOKEN_TTL_S}, token)
            tokens.append(issued["token"])
    except StackError as error:
        if ": 403 " not in str(error):
            raise
    return Workload.from_sources(
        Sources(sources["program"], sources["program_format"], sources["catalog"],
                sources["catalog_format"]),
        customer_tokens=tokens, merchant=served["merchant"], version=release["version"])


def clean_env() -> dict[str, str]:
    """This process's environment without the settings that would point a child elsewhere."""
    return {k: v for k, v in os.environ.items()
            if k != "DATABASE_URL" and not k.startswith("POPRULES_")}


@dataclass(frozen=True)
class ControlPlane:
    url: str
    token: str  # the bootstrapped merchant's, every scope
    merchant: int

    @property
    def base(self) -> str:
        return f"{self.url}/v1/merchants/{self.merchant}"


def start_control_plane(running: ExitStack, root: Path, merchant: str,
                        log: Path) -> ControlPlane:
    """A control plane on a fresh SQLite database under `root`, its merchant bootstrapped,
    serving until `running` closes."""
    cp_env = {**clean_env(), "DATABASE_URL": f"sqlite:///{root / 'cp.db'}",
              "POPRULES_KEY_DIR": str(root / "keys")}
    token = run([POPRULES, "cp", "bootstrap", "--merchant", merchant],
                cp_env).strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    control = running.enter_context(server(
        [POPRULES, "cp", "serve", "--bind", f"127.0.0.1:{port}", "--workers",
         str(CP_WORKERS)], cp_env, log))
    wait("the control plane", lambda: call("GET", f"{url}/healthz"), control)
    return ControlPlane(url, token, call("GET", f"{url}/v1/whoami", token=token)["merchant_id"])


@contextmanager
def local_stack(logs: Path) -> Iterator[Target]:
    """A control plane and a PoP serving the generated program, for the block's length; both
    are stopped (SIGTERM, then SIGKILL to the process group) however the block ends. Their
    logs are kept in `logs`."""
    logs.mkdir(parents=True, exist_ok=True)
    generated = generate_program(PROGRAM_SEED, rules=RULES, items=ITEMS)
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="poprules-loadtest-") as scratch, \
            ExitStack() as running:
        root = Path(scratch)
        plane = start_control_plane(running, root, "loadtest", logs / "cp.log")
        cp, token, base = plane.url, plane.token, plane.base
        pop_port = free_port()
        pop = f"http://127.0.0.1:{pop_port}"
        version = call("POST", f"{base}/versions", {"program": generated.program_yaml,
                                                    "catalog": generated.catalog_json}, token)
        release = call("POST", f"{base}/releases", {"version": version["number"]}, token)
        enrollment = call("POST", f"{base}/enrollment-tokens", {"pop": POP_NAME}, token)
        state = root / "pop"
        run([POPRULES, "pop", "enroll", "--control-plane", cp, "--token",
              enrollment["token"], "--state", str(state)], env)
        offset = generated.vocabulary.anchor - int(time.time())
        child = running.enter_context(server(
            [POPRULES, "pop", "serve", "--state", str(state), "--bind",
             f"127.0.0.1:{pop_port}", "--threads", str(POP_THREADS)],
            {**env, "POPRULES_POP_CLOCK_OFFSET": str(offset)}, logs / "pop.log"))
        wait("the PoP's release", lambda: call("GET", f"{pop}/healthz").get("release")
             == release["number"], child)
        yield Target(pop, cp, token, child.pid, state)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False,
                          timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        raise StackError(f"{' '.join(args[1:4])}: {done.stderr.strip()[-300:]}")
    return done.stdout


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own process group, so a gunicorn master's workers are stopped with it."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def wait(what: str, check: Callable[[], Any], child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise StackError(f"{what}: the process exited ({child.returncode})")
        try:
            if check():
                return
        except (OSError, StackError):
            pass
        time.sleep(0.1)
    raise StackError(f"gave up waiting for {what}")
