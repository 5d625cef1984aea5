"""The browser suite's world: a control plane and a self-hosted PoP as real processes, the
corner market's program published (plus an expired coupon set, so a page can meet one), and
Debian's Chromium driven headless by Playwright (scripts/browser.sh installs it).

The PoP's clock is the demo's Saturday morning in Lisbon (scripts/demo.py), so the page shows
the same figures whatever day the suite runs. Screenshots of the key states are written to
tests/browser/artifacts/ (kept by CI as the run's artifacts; git-ignored).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from loadtests.stack import (
    POPRULES,
    call,
    clean_env,
    free_port,
    run,
    server,
    start_control_plane,
    wait,
)
from scripts.demo import SHOP_TIME
from tests.conftest import DEMO, ROOT

ARTIFACTS = Path(__file__).parent / "artifacts"
WIDTHS = {"phone": 375, "desktop": 1280}
# An offer of a season that is over, so the page can be shown an expired code.
SPRING = """
  - id: spring
    codes: [SPRING-26]
    expires: 2026-06-01T00:00
"""
SPRING_RULE = """
  - id: spring-sale
    title: 5% off everything with the spring code
    coupon: spring
    discount: 5%
"""


def program_text() -> str:
    """The corner market's program with the spring set and its rule added."""
    text = (DEMO / "rules.yaml").read_text(encoding="utf-8")
    text = text.replace("\nrules:\n", f"{SPRING}\nrules:{SPRING_RULE}\n", 1)
    assert "spring-sale" in text and "SPRING-26" in text, "the demo program changed shape"
    return text


def chromium() -> str:
    recorded = ROOT / ".edge" / ".browser"
    found = recorded.read_text().strip() if recorded.exists() else None
    found = found if found and Path(found).exists() else (
        shutil.which("chromium") or shutil.which("chromium-browser"))
    if found is None:
        pytest.fail("no chromium: run `bash scripts/browser.sh` (make test does)", pytrace=False)
    return found


@dataclass
class Shop:
    """The running world: URLs, the merchant's token, and a way to start more PoPs."""

    cp: str
    pop: str
    token: str
    merchant: int
    root: Path
    env: dict[str, str]
    stack: ExitStack

    @property
    def base(self) -> str:
        return f"{self.cp}/v1/merchants/{self.merchant}"

    def start_pop(self, name: str) -> tuple[str, Any]:
        """Another PoP of the shop, enrolled and serving: its URL and its process."""
        enrollment = call("POST", f"{self.base}/enrollment-tokens", {"pop": name}, self.token)
        state = self.root / name
        run([POPRULES, "pop", "enroll", "--control-plane", self.cp, "--token",
             enrollment["token"], "--state", str(state)], self.env)
        port = free_port()
        offset = int(SHOP_TIME.timestamp() - time.time())
        child = self.stack.enter_context(server(
            [POPRULES, "pop", "serve", "--state", str(state), "--bind", f"127.0.0.1:{port}",
             "--poll", "0.5"],
            {**self.env, "POPRULES_POP_CLOCK_OFFSET": str(offset)}, self.root / f"{name}.log"))
        url = f"http://127.0.0.1:{port}"
        wait(f"PoP {name}", lambda: call("GET", f"{url}/healthz").get("release"), child)
        return url, child

    def release_at(self, pop: str) -> int:
        number: int = call("GET", f"{pop}/v1/release")["release"]["number"]
        return number


@pytest.fixture(scope="session")
def shop() -> Iterator[Shop]:
    with tempfile.TemporaryDirectory(prefix="poprules-browser-") as scratch, \
            ExitStack() as stack:
        root = Path(scratch)
        plane = start_control_plane(stack, root, "Corner Market", root / "cp.log")
        version = call("POST", f"{plane.base}/versions", {
            "program": program_text(),
            "catalog": (DEMO / "catalog.json").read_text(encoding="utf-8")}, plane.token)
        call("POST", f"{plane.base}/releases", {"version": version["number"]}, plane.token)
        world = Shop(plane.url, "", plane.token, plane.merchant, root, clean_env(), stack)
        world.pop, _ = world.start_pop("lisbon-stall")
        yield world


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield launch(playwright)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium(), headless=True,
                                      args=["--no-sandbox"])


@pytest.fixture(params=list(WIDTHS), ids=list(WIDTHS))
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    width = WIDTHS[request.param]
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-GB",
                                  timezone_id="Europe/Lisbon")
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.width_name = request.param  # type: ignore[attr-defined]
    yield opened
    context.close()
    assert problems == [], f"errors in the page: {problems}"


def snap(page: Page, name: str) -> None:
    """A screenshot of a key state, and the check that nothing overflows the viewport."""
    ARTIFACTS.mkdir(exist_ok=True)
    width = getattr(page, "width_name", "page")
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} at {width}: {overflow}px wider than the viewport"
