"""The merchant console (/console) and the shoppers' claim page (/claim), through the Flask
test client as a browser would use them: sign-in, CSRF, scopes, the draft's located errors
(the API's own), preview, publish, rollback, audit, activity, and claiming a token once."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from control_plane import ledger
from control_plane.storage.models import ApiToken, AuditEvent, Pop, ProgramVersion, Release
from control_plane.tokens import revoke_token
from tests.control_plane.conftest import Plane, start_app
from tests.control_plane.test_ledger import AT, cashback, sale, seed_claim, store
from tests.control_plane.test_versions import CATALOG, PROGRAM, REQUEST, draft

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SUBJECT = "shopper-4242"
UNKNOWN_ATTRIBUTE = PROGRAM.replace('items: item.category == "apparel"',
                                    'items: item.colour == "red"')


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def csrf_of(page: TestResponse) -> str:
    """The CSRF token of a page's form."""
    found = CSRF.search(text(page))
    assert found is not None, text(page)
    return found.group(1)


def sign_in(plane: Plane, token: str) -> FlaskClient:
    """A browser signed in with `token`."""
    client = plane.app.test_client()
    form = client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={
        "csrf": csrf_of(form), "token": token})
    assert response.status_code == 303, text(response)
    return client


def submit(client: FlaskClient, path: str, **data: Any) -> TestResponse:
    """Post a form as a page would: with the session's CSRF token, as any form shows it."""
    if "csrf" not in data:
        data["csrf"] = csrf_of(client.get("/console/sign-in"))
    return client.post(path, data=data)


def publish_form(client: FlaskClient, action: str, program: str = PROGRAM,
                 **fields: Any) -> TestResponse:
    form = {"action": action, "program": program, "program_format": "yaml",
            "catalog": CATALOG, "catalog_format": "json", "samples": json.dumps([REQUEST]),
            "group": "*", **fields}
    return submit(client, "/console/publish", **form)


def counts(plane: Plane) -> tuple[int, int]:
    with plane.state.db.session() as session:
        return (session.scalar(select(func.count()).select_from(ProgramVersion)) or 0,
                session.scalar(select(func.count()).select_from(Release)) or 0)


def api_release(plane: Plane, merchant_id: int, token: str, program: str = PROGRAM) -> int:
    base = f"/v1/merchants/{merchant_id}"
    version = plane.call("POST", f"{base}/versions", token, json=draft(program=program))
    assert version.status_code == 201, version.get_json()
    made = plane.call("POST", f"{base}/releases", token,
                      json={"version": version.get_json()["number"]})
    assert made.status_code == 201, made.get_json()
    number: int = made.get_json()["number"]
    return number


# -- signing in -------------------------------------------------------------------------------


def test_every_page_needs_a_signed_in_token(plane: Plane) -> None:
    for path in ("/console", "/console/releases", "/console/releases/1", "/console/publish",
                 "/console/audit", "/console/activity", "/console/releases/1/rollback"):
        response = plane.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"].startswith("/console/sign-in?next="), path
    page = plane.client.get("/console/sign-in")
    assert page.status_code == 200 and 'lang="en"' in text(page)
    assert 'for="token"' in text(page)  # a labelled field


def test_a_bad_or_revoked_token_is_refused(plane: Plane) -> None:
    account = plane.merchant("corner")
    client = plane.app.test_client()
    form = client.get("/console/sign-in")
    csrf = csrf_of(form)
    refused = client.post("/console/sign-in", data={"csrf": csrf, "token": "prt_wrong"})
    assert refused.status_code == 401
    assert "unknown or has been revoked" in text(refused)
    assert client.get("/console/releases").status_code == 303

    browser = sign_in(plane, account.token)
    assert browser.get("/console/releases").status_code == 200
    with plane.state.db.session() as session:  # revoking the token ends its sessions at once
        token = session.get(ApiToken, account.token_id)
        assert token is not None
        revoke_token(session, token, actor_token_id=None)
        session.commit()
    assert browser.get("/console/releases").status_code == 303


def test_the_session_cookie_keeps_no_token_and_is_httponly_and_samesite(plane: Plane) -> None:
    account = plane.merchant("corner")
    client = plane.app.test_client()
    form = client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={
        "csrf": csrf_of(form), "token": account.token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert account.token not in cookie
    with client.session_transaction() as session:
        assert account.token not in str(dict(session))
    page = client.get("/console/releases")
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]

    signed_out = submit(client, "/console/sign-out")
    assert signed_out.status_code == 303
    assert client.get("/console/releases").status_code == 303


def test_workers_on_one_key_directory_share_the_session_key(migrated: str,
                                                            tmp_path: Path) -> None:
    first, second = (start_app(migrated, tmp_path / "keys") for _ in range(2))
    try:
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
        assert len(first.config["SECRET_KEY"]) == 64
        plane = Plane(first)
        account = plane.merchant("corner")
        browser = sign_in(plane, account.token)
        cookie = browser.get_cookie("session")
        assert cookie is not None
        other = second.test_client()
        other.set_cookie("session", cookie.value)
        assert other.get("/console/releases").status_code == 200
    finally:
        for app in (first, second):
            app.extensions["poprules"].db.dispose()


def test_a_form_without_the_csrf_token_is_refused(plane: Plane) -> None:
    account = plane.merchant("corner")
    browser = sign_in(plane, account.token)
    before = counts(plane)
    forged = publish_form(browser, "publish", csrf="forged")
    assert forged.status_code == 400 and "This form has expired" in text(forged)
    assert counts(plane) == before
    assert browser.post("/console/sign-out").status_code == 400
    assert browser.get("/console/releases").status_code == 200  # still signed in
    assert plane.client.post("/console/sign-in", data={"token": account.token}).status_code == 400


# -- publishing -------------------------------------------------------------------------------


def test_invalid_yaml_is_shown_at_its_line_and_nothing_is_stored(plane: Plane) -> None:
    account = plane.merchant("corner")
    browser = sign_in(plane, account.token)
    broken = PROGRAM.replace("    discount: 10%\n", "    discount: [10%\n", 1)
    expected = plane.call("POST", f"/v1/merchants/{account.merchant_id}/versions",
                          account.token, json=draft(program=broken)).get_json()["error"]
    assert expected["source"] == "program" and expected["line"] > 1
    before = counts(plane)
    for action in ("check", "preview", "publish"):
        response = publish_form(browser, action, broken)
        assert response.status_code == 422, action
        page = text(response)
        assert f'href="#program-line-{expected["line"]}">{expected["line"]}</a>' in page
        assert f'<li id="program-line-{expected["line"]}" class="bad">' in page
        assert "The draft has a problem" in page
    assert counts(plane) == before


def test_an_unknown_attribute_is_shown_at_its_rule_and_line(plane: Plane) -> None:
    account = plane.merchant("corner")
    browser = sign_in(plane, account.token)
    line = next(n for n, row in enumerate(UNKNOWN_ATTRIBUTE.splitlines(), 1) if "colour" in row)
    response = publish_form(browser, "publish", UNKNOWN_ATTRIBUTE)
    assert response.status_code == 422
    page = text(response)
    problem = re.search(r'<tr class="problem-row">(.*?)</tr>', page, re.DOTALL)
    assert problem is not None
    cells = [re.sub(r"<[^>]+>", "", cell).strip()
             for cell in re.findall(r"<td>(.*?)</td>", problem.group(1), re.DOTALL)]
    assert cells[:3] == ["program", "summer-apparel", str(line)]
    assert int(cells[3]) >= 1 and "colour" in cells[5]
    assert f'<li id="program-line-{line}" class="bad">' in page
    assert "<mark>" in page
    assert counts(plane) == (0, 0)


def test_check_says_what_the_draft_holds(plane: Plane) -> None:
    browser = sign_in(plane, plane.merchant("corner").token)
    response = publish_form(browser, "check")
    assert response.status_code == 200
    assert "The draft checks" in text(response) and "7 rules" in text(response)
    assert counts(plane) == (0, 0)


def test_the_form_starts_as_the_live_release_and_preview_shows_the_changes(
        plane: Plane) -> None:
    account = plane.merchant("corner")
    api_release(plane, account.merchant_id, account.token)
    browser = sign_in(plane, account.token)
    form = text(browser.get("/console/publish"))
    assert "release 1" in form and "summer-apparel" in form  # the live program, prefilled

    preview = publish_form(browser, "preview", PROGRAM.replace("discount: 10%", "discount: 12%"))
    assert preview.status_code == 200
    page = text(preview)
    assert "Preview against release 1 (version 1)" in page
    assert "1 of 1 sample requests change" in page
    row = re.search(r"rule <code>summer-apparel</code></th>(.*?)</tr>", page, re.DOTALL)
    assert row is not None
    assert "applied: €3.98" in row.group(1) and "applied: €4.78" in row.group(1)
    assert "+€0.80" in row.group(1)
    assert counts(plane) == (1, 1)  # a preview keeps nothing


def test_publish_makes_a_release_that_the_releases_page_lists(plane: Plane) -> None:
    account = plane.merchant("corner")
    browser = sign_in(plane, account.token)
    response = publish_form(browser, "publish", PROGRAM.replace("\n", "\r\n"))  # a browser's
    assert response.status_code == 303, text(response)
    assert response.headers["Location"] == "/console/releases/1"
    with plane.state.db.session() as session:
        assert session.scalar(select(ProgramVersion.program)) == PROGRAM  # as the file was
    shown = browser.get("/console/releases/1")
    assert "Release 1 published from version 1" in text(shown)
    assert "live on every PoP" in text(shown)
    assert counts(plane) == (1, 1)

    listing = text(browser.get("/console/releases"))
    row = re.search(r'<tr id="release-1" class="live">(.*?)</tr>', listing, re.DOTALL)
    assert row is not None
    with plane.state.db.session() as session:
        full = session.scalar(select(Release.release_hash))
    assert full is not None
    assert f'title="{full}"' in row.group(1) and full[:19] + "…" in row.group(1)
    assert f"test (token {account.token_id})" in row.group(1)
    assert "corner-market" in row.group(1)

    audit = text(browser.get("/console/audit"))
    assert audit.index("release.published") < audit.index("version.created")  # newest first


def test_a_refused_publish_is_an_error_message(plane: Plane) -> None:
    account = plane.merchant("corner")
    browser = sign_in(plane, account.token)
    response = publish_form(browser, "publish", group="Not A Group")
    assert response.status_code == 422 and "a group name" in text(response)
    assert counts(plane) == (0, 0)


def test_rollback_publishes_a_new_release(plane: Plane) -> None:
    account = plane.merchant("corner")
    api_release(plane, account.merchant_id, account.token)
    api_release(plane, account.merchant_id, account.token,
                PROGRAM.replace("discount: 10%", "discount: 12%"))
    browser = sign_in(plane, account.token)
    listing = text(browser.get("/console/releases"))
    assert "Roll back to #1…" in listing and "Roll back to #2…" not in listing  # 2 is live

    confirm = browser.get("/console/releases/1/rollback")
    assert confirm.status_code == 200 and "Roll back to release 1?" in text(confirm)
    assert counts(plane) == (2, 2)  # asking changes nothing
    done = submit(browser, "/console/releases/1/rollback", group="*")
    assert done.status_code == 303 and done.headers["Location"] == "/console/releases/3"
    assert counts(plane) == (2, 3)
    listing = text(browser.get("/console/releases"))
    row = re.search(r'<tr id="release-3" class="live">(.*?)</tr>', listing, re.DOTALL)
    assert row is not None and "rollback to #1" in row.group(1)

    again = submit(browser, "/console/releases/1/rollback", group="*")
    assert again.status_code == 422 and "runs already" in text(again)
    assert counts(plane) == (2, 3)


def test_a_token_without_publish_reads_but_is_refused_publishing(plane: Plane) -> None:
    account = plane.merchant("corner")
    api_release(plane, account.merchant_id, account.token)
    api_release(plane, account.merchant_id, account.token,
                PROGRAM.replace("discount: 10%", "discount: 12%"))
    browser = sign_in(plane, plane.token(account.merchant_id, "read"))
    listing = browser.get("/console/releases")
    assert listing.status_code == 200 and "Roll back to" not in text(listing)
    assert publish_form(browser, "check").status_code == 200
    for response in (publish_form(browser, "publish"),
                     submit(browser, "/console/releases/1/rollback", group="*"),
                     browser.get("/console/releases/1/rollback")):
        assert response.status_code == 403
        assert "needs a token with the publish scope" in text(response)
    assert counts(plane) == (2, 2)
    assert browser.get("/console/audit").status_code == 403  # no audit scope either


def test_merchant_text_is_escaped(plane: Plane) -> None:
    account = plane.merchant("<script>alert(1)</script>")
    browser = sign_in(plane, account.token)
    page = text(browser.get("/console/releases"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)" in page
    response = publish_form(browser, "check", PROGRAM.replace(
        'items: item.category == "apparel"', 'items: item.category == "<b>x</b>" and nope'))
    assert response.status_code == 422 and "<b>x</b>" not in text(response)


def test_an_unknown_console_page_is_an_html_404(plane: Plane) -> None:
    response = plane.client.get("/console/nowhere")
    assert response.status_code == 404 and response.mimetype == "text/html"


# -- audit and activity -----------------------------------------------------------------------


def test_the_audit_trail_is_paged_newest_first(plane: Plane) -> None:
    account = plane.merchant("corner")
    for _ in range(55):
        plane.token(account.merchant_id, "read")
    browser = sign_in(plane, account.token)
    first = text(browser.get("/console/audit"))
    assert first.count("<code>token.created</code>") == 50
    older = re.search(r'href="/console/audit\?before=(\d+)">Older events', first)
    assert older is not None
    second = text(browser.get(f"/console/audit?before={older.group(1)}"))
    assert "merchant.created" in second and "Older events" not in second
    assert browser.get("/console/audit?before=x").status_code == 422


def test_activity_charts_cashback_and_receipts_per_day(plane: Plane) -> None:
    account = plane.merchant("corner")
    now = datetime.now(UTC)
    store(plane, account.merchant_id, sale(wallet=[cashback("pickup-boost", 400)],
                                           claim=ledger.claim_hash("a")), at=now)
    store(plane, account.merchant_id, sale(wallet=[cashback("pickup-boost", 150)],
                                           claim=ledger.claim_hash("b")), at=now)
    browser = sign_in(plane, account.token)
    response = browser.get("/console/activity")
    assert response.status_code == 200
    page = text(response)
    assert page.count("<svg") == 2 and page.count('<rect class="bar"') == 60
    today = now.date().isoformat()
    row = re.search(rf'<time datetime="{today}">{today}</time></th>(.*?)</tr>', page,
                    re.DOTALL)
    assert row is not None
    assert re.findall(r"<td>(.*?)</td>", row.group(1)) == ["550 (minor units)", "2"]
    assert f"{today}: 550 (minor units)" in page  # the bar's own label


# -- the claim page ---------------------------------------------------------------------------


def claimable(plane: Plane, merchant_id: int, amount: int = 400) -> str:
    """A booked anonymous sale's claim token, as its checkout's QR code carries it."""
    with plane.state.db.session() as session:
        pop = Pop(merchant_id=merchant_id, name="stall", group="*", public_key="00" * 32,
                  token_hash=uuid.uuid4().hex * 2)
        session.add(pop)
        session.commit()
        token = f"{pop.id}-1.{'Q' * 22}"
    seed_claim(plane, merchant_id, token, amount)
    return token


def claim(plane: Plane, **form: str) -> TestResponse:
    client = plane.app.test_client()
    page = client.get("/claim")
    return client.post("/claim", data={"csrf": csrf_of(page), **form}, follow_redirects=True)


def test_the_claim_page_reads_the_code_from_the_link_without_sending_it(plane: Plane) -> None:
    page = plane.client.get("/claim")
    assert page.status_code == 200
    nonce = re.search(r'<script nonce="([^"]+)">', text(page))
    assert nonce is not None and "location.hash" in text(page)
    assert f"script-src 'nonce-{nonce.group(1)}'" in page.headers["Content-Security-Policy"]
    assert 'name="claim_token"' in text(page)  # to paste it without script


def test_a_claim_moves_the_cashback_once(plane: Plane) -> None:
    account = plane.merchant("corner")
    plane.app.config[ledger.CLOCK] = lambda: AT  # before the cashback vests
    api_release(plane, account.merchant_id, account.token)  # the currency: EUR
    token = claimable(plane, account.merchant_id)
    claimed = claim(plane, fragment=token, subject=SUBJECT)
    assert claimed.status_code == 200, text(claimed)
    assert claimed.request.path == "/claim/done"  # another address than the claim link's
    assert plane.client.get("/claim/done").status_code == 303  # shown once, to its claimer
    page = text(claimed)
    assert "Cashback claimed" in page and "€4.00" in page
    assert "2026-08-03 10:00 UTC" in page  # when it vests
    wallet = plane.call("POST", "/v1/wallets/lookup", account.token,
                        json={"subject": SUBJECT}).get_json()
    assert [entry["amount"] for entry in wallet["pending"]] == [400]

    again = claim(plane, fragment=token, subject="someone-else")
    assert again.status_code == 409 and "This code was already used" in text(again)
    with plane.state.db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind == "claim.booked")) == 1
    audit = text(sign_in(plane, account.token).get("/console/audit"))
    assert "shopper (claim page)" in audit


def test_a_pasted_link_works_without_script(plane: Plane) -> None:
    account = plane.merchant("corner")
    token = claimable(plane, account.merchant_id, 250)
    claimed = claim(plane, claim_token=f"https://cp.example/claim#{token}", subject=SUBJECT)
    assert claimed.status_code == 200 and "250 (minor units)" in text(claimed)


def test_unknown_bad_and_throttled_claims_are_named(plane: Plane) -> None:
    account = plane.merchant("corner")
    token = claimable(plane, account.merchant_id)
    pop_id = token.partition("-")[0]
    for unknown in (f"{pop_id}-1.{'R' * 22}", f"{pop_id}-9.{'Q' * 22}", f"999999-1.{'Q' * 22}"):
        response = claim(plane, fragment=unknown, subject=SUBJECT)
        assert response.status_code == 404 and "We cannot find this purchase yet" in text(response)
    bad = claim(plane, claim_token="hello", subject=SUBJECT)
    assert bad.status_code == 422 and "This is not a claim code" in text(bad)
    assert claim(plane, subject=SUBJECT).status_code == 422
    no_subject = claim(plane, fragment=token, subject="  ")
    assert no_subject.status_code == 422 and "id of your account" in text(no_subject)
    assert plane.client.post("/claim", data={"fragment": token, "subject": SUBJECT}
                             ).status_code == 400  # no CSRF token

    plane.call("PUT", f"/v1/merchants/{account.merchant_id}/throttles", account.token,
               json={"customer": {"window": 3600, "max_claims": 0}})
    held = claim(plane, fragment=token, subject=SUBJECT)
    assert held.status_code == 429 and "Too many claims right now" in text(held)
    with plane.state.db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind == "claim.refused")) == 1
