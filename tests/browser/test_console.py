"""The merchant console in a real headless Chromium: a draft published from the browser
reaches the PoP, and a broken draft is shown at its rule and line with nothing published
(control_plane/console)."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from loadtests.stack import call
from tests.browser.conftest import Shop, snap


def sign_in(page: Page, shop: Shop) -> None:
    page.goto(f"{shop.cp}/console")
    page.get_by_label("API token").fill(shop.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text(
        re.compile("Sign in", re.IGNORECASE))


def releases(shop: Shop) -> int:
    listed = call("GET", f"{shop.base}/releases", token=shop.token)
    items = listed["releases"] if isinstance(listed, dict) else listed
    return max(release["number"] for release in items)


def test_a_draft_published_in_the_console_reaches_the_pop(page: Page, shop: Shop) -> None:
    sign_in(page, shop)
    before = releases(shop)
    page.goto(f"{shop.cp}/console/publish")
    program = page.get_by_label("Program", exact=True)
    text = program.input_value()
    assert "pickup-boost" in text, "the draft starts from the live program"
    title = f"Loyalty points ({page.width_name})"  # type: ignore[attr-defined]
    renamed = re.sub(r"(- id: loyalty\n    title: ).*", rf"\g<1>{title}", text)
    assert renamed != text
    program.fill(renamed)
    page.get_by_role("button", name="Preview against live").click()
    expect(page.get_by_role("heading", name=re.compile("Preview", re.IGNORECASE))).to_be_visible()
    snap(page, "console-preview")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_role("heading", name=f"Release {before + 1}")).to_be_visible()
    snap(page, "console-published")
    assert releases(shop) == before + 1

    deadline = time.monotonic() + 30
    while shop.release_at(shop.pop) != before + 1:  # the PoP polls every 0.5 s
        assert time.monotonic() < deadline, (
            f"the PoP runs {call('GET', f'{shop.pop}/v1/release')}, the control plane has "
            f"{call('GET', f'{shop.base}/releases', token=shop.token)}; PoP log: "
            f"{(shop.root / 'lisbon-stall.log').read_text()[-1500:]}")
        time.sleep(0.2)
    page.goto(f"{shop.pop}/demo")
    page.get_by_role("button", name="Add Organic tee to cart").click()
    page.get_by_text("Why these prices?").click()
    expect(page.locator("poprules-quote details[part=why]")).to_contain_text(title)


def test_a_broken_draft_is_shown_at_its_line_and_nothing_is_published(
        page: Page, shop: Shop) -> None:
    sign_in(page, shop)
    before = releases(shop)
    page.goto(f"{shop.cp}/console/publish")
    program = page.get_by_label("Program", exact=True)
    broken = program.input_value().replace("when: any(item.category == \"apparel\")",
                                           "when: any(item.colour == \"apparel\")")
    program.fill(broken)
    page.get_by_role("button", name="Publish", exact=True).click()
    problem = page.get_by_role("alert")
    expect(problem).to_contain_text("socks-upsell")
    expect(problem).to_contain_text("colour")
    line = next(number for number, text in enumerate(broken.splitlines(), 1)
                if "item.colour" in text)
    expect(problem).to_contain_text(str(line))
    snap(page, "console-error")
    assert releases(shop) == before
