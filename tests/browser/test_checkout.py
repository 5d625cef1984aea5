"""The demo shop and the checkout component in a real headless Chromium, at a phone's and a
desktop's width: what a shopper sees as the cart changes (edge_worker/core/web)."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Locator, Page, expect

from loadtests.stack import call
from tests.browser.conftest import Shop, snap

# The PoP's clock: Saturday 2026-07-04 10:30 in Lisbon (conftest). Organic tee 19.90,
# clay mug 7.45; pickup-boost gives 10% cashback from 20.00 (pickup), capped at 4.00 and
# vesting 30 days later; big-basket gives 2% from 60.00 and 4% from 100.00, in the lane the
# shopper chooses.


def open_shop(page: Page, shop: Shop) -> None:
    page.goto(f"{shop.pop}/demo")
    expect(page.get_by_role("button", name="Add Organic tee to cart")).to_be_visible()


def add(page: Page, title: str, times: int = 1) -> None:
    for _ in range(times):
        page.get_by_role("button", name=f"Add {title} to cart").click()


def component(page: Page) -> Locator:
    """The component's box, inside its shadow root (CSS locators pierce open shadow roots;
    the host's own text does not include them)."""
    return page.locator("poprules-quote section[part=box]")


def payable(page: Page) -> Locator:
    return page.locator("poprules-quote [data-amount=payable]")


def test_adding_to_the_cart_updates_the_quote(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    expect(component(page)).to_contain_text("Add items to see your prices")
    expect(page.locator("poprules-quote [part=stale]")).to_be_hidden()
    add(page, "Organic tee")
    expect(payable(page)).to_have_text("€19.90")
    add(page, "Clay mug")
    # Market morning: 1.00 off each mug, so 19.90 + 6.45.
    expect(payable(page)).to_have_text("€26.35")
    expect(component(page)).to_contain_text("Discounts")
    snap(page, "cart-updated")


def test_the_nudge_gives_way_to_the_reward_it_promised(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    add(page, "Organic tee")
    nudge = page.locator("poprules-quote .nudge[data-rule=pickup-boost]")
    expect(nudge).to_contain_text("You are €0.10 away from your next reward: 10% cashback")
    wallet = page.locator("poprules-quote [data-amount=cashback_wallet]")
    expect(wallet).to_have_text("€0.00")
    snap(page, "nudge")
    add(page, "Organic tee")
    expect(nudge).to_have_count(0)
    expect(wallet).to_have_text("€3.98")
    # Vests 30 days after the checkout: 3 August.
    expect(component(page)).to_contain_text("€3.98 available from 3 Aug 2026")
    expect(payable(page)).to_have_text("€39.80")  # wallet cashback is not off the price
    snap(page, "reward-reached")


def test_choosing_to_redeem_now_lowers_what_the_shopper_pays(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    add(page, "Organic tee", 4)  # 79.60: big-basket's 2% step, a choice lane
    expect(payable(page)).to_have_text("€79.60")
    lanes = page.get_by_role("group", name="How do you want your cashback?")
    expect(lanes.get_by_label("Wallet credit, for later")).to_be_checked()
    lanes.get_by_label("Redeem now, off this order").check()
    # 2% of 79.60 = 1.59, now off the price.
    expect(payable(page)).to_have_text("€78.01")
    expect(component(page)).to_contain_text("€4.00 available from 3 Aug 2026")
    expect(component(page)).to_contain_text("after €1.59 cashback now")
    snap(page, "redeem-now")
    lanes.get_by_label("Wallet credit, for later").check()
    expect(payable(page)).to_have_text("€79.60")


def test_coupon_codes_get_the_right_message(page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    add(page, "Organic tee", 2)
    expect(payable(page)).to_have_text("€39.80")
    field = page.get_by_label("Coupon code")
    message = page.locator("poprules-quote [part=coupon-message]")

    field.fill("NOPE-123")
    field.press("Enter")  # the keyboard submits the form
    expect(message).to_have_text("NOPE-123: We don't know this code.")

    field.fill("SPRING-26")
    page.get_by_role("button", name="Apply").click()
    expect(message).to_have_text("SPRING-26: This code has expired.")

    field.fill("summer-24")
    page.get_by_role("button", name="Apply").click()
    expect(message).to_contain_text("summer-24 applied: 10% off apparel with the summer code")
    expect(payable(page)).to_have_text("€35.82")  # 10% off the tees
    snap(page, "coupon-applied")
    page.get_by_text("Why these prices?").click()
    why = page.locator("poprules-quote details[part=why]")
    expect(why).to_contain_text("Cashback that grows with your basket: its condition is not met")
    expect(why).to_contain_text("5% off everything with the spring code: needs a coupon code")


def test_the_last_quote_stays_marked_stale_when_the_pop_is_unreachable(
        page: Page, shop: Shop) -> None:
    url, process = shop.start_pop(f"stall-{page.width_name}")  # type: ignore[attr-defined]
    page.goto(f"{url}/demo")
    add(page, "Organic tee", 2)
    expect(payable(page)).to_have_text("€39.80")
    process.terminate()
    process.wait(timeout=30)
    add(page, "Clay mug")
    banner = page.locator("poprules-quote [part=stale]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Prices may be out of date")
    expect(page.locator("poprules-quote")).to_have_js_property("stale", True)
    expect(payable(page)).to_have_text("€39.80")  # the last quote, still shown
    snap(page, "stale")


def test_an_anonymous_checkout_shows_its_claim_code_and_the_claim_page_takes_it_once(
        page: Page, shop: Shop) -> None:
    open_shop(page, shop)
    add(page, "Organic tee", 2)
    expect(payable(page)).to_have_text("€39.80")
    page.get_by_label("I have no account").check()
    page.get_by_role("button", name="Check out").click()
    expect(page.locator("#result")).to_contain_text(re.compile(r"Receipt \d+-\d+"))
    claim = page.locator("poprules-quote [part=claim]")
    image = claim.get_by_role("img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0"), "the QR code is no image"
    snap(page, "claim-code")
    url = claim.locator("p.muted").inner_text()
    assert url.startswith(f"{shop.cp}/claim#"), url
    token = url.split("#", 1)[1]
    receipt = token.split(".")[0]
    wait_booked(shop, receipt)

    page.goto(url)
    page.get_by_label(re.compile("account", re.IGNORECASE)).fill(f"shopper-{page.width_name}")  # type: ignore[attr-defined]
    page.get_by_role("button", name=re.compile("claim", re.IGNORECASE)).click()
    expect(page.locator("main")).to_contain_text("€3.98")
    snap(page, "claimed")
    page.goto(url)
    page.get_by_label(re.compile("account", re.IGNORECASE)).fill("someone-else")
    page.get_by_role("button", name=re.compile("claim", re.IGNORECASE)).click()
    expect(page.locator("main")).to_contain_text(re.compile("already", re.IGNORECASE))


def wait_booked(shop: Shop, receipt: str) -> None:
    pop = int(receipt.split("-")[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = call("GET", f"{shop.cp}/v1/pops/{pop}/reconciliation", token=shop.token)
        if report["booked"] >= int(receipt.split("-")[1]):
            return
        time.sleep(0.3)
    raise AssertionError(f"receipt {receipt} was not booked within 60 s")
