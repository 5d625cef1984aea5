"""`poprules publish`, `releases`, `rollback` and `simulate` against a real server: the app
under Werkzeug's server in a thread on a free port (SQLite), called over HTTP as a merchant
would."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from control_plane.client import ApiError, Client, ClientError
from poprules import api
from poprules.cli import main
from tests.conftest import ROOT
from tests.control_plane.conftest import Account, Plane, start_app

EXAMPLE = ROOT / "examples" / "corner-market"
PROGRAM, CATALOG, REQUEST = (EXAMPLE / "rules.yaml", EXAMPLE / "catalog.json",
                             EXAMPLE / "request.json")


@dataclass
class Server:
    url: str
    plane: Plane
    account: Account

    def run(self, *args: str, token: str | None = None) -> Result:
        """`poprules ARGS` against this server, as the account's merchant."""
        return CliRunner().invoke(main, [*args, "--url", self.url, "--token",
                                         self.account.token if token is None else token])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    app = start_app(f"sqlite:///{tmp_path / 'poprules.db'}", tmp_path / "keys")
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    plane = Plane(app)
    try:
        yield Server(f"http://127.0.0.1:{http.server_port}", plane, plane.merchant("corner"))
    finally:
        http.shutdown()
        thread.join()
        app.extensions["poprules"].db.dispose()


def _release_line(output: str) -> tuple[int, str]:
    match = re.search(r"^release (\d+): (sha256:[0-9a-f]{64})", output, re.MULTILINE)
    assert match, output
    return int(match[1]), match[2]


def _program_variant(tmp_path: Path) -> Path:
    """The example program with the summer code's discount doubled (10% -> 20%)."""
    text = PROGRAM.read_text()
    assert text.count("discount: 10%") == 1
    variant = tmp_path / "rules-20.yaml"
    variant.write_text(text.replace("discount: 10%", "discount: 20%"))
    return variant


def test_whoami_names_the_tokens_merchant(server: Server) -> None:
    audit_only = server.plane.token(server.account.merchant_id, "audit")
    client = Client(server.url, audit_only)
    who = client.whoami()
    assert who["merchant_id"] == server.account.merchant_id and who["scopes"] == ["audit"]
    assert client.merchant_id == server.account.merchant_id


def test_publish_prints_the_release_and_the_server_has_it(server: Server,
                                                          tmp_path: Path) -> None:
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps([json.loads(REQUEST.read_text())]))
    result = server.run("publish", str(PROGRAM), str(CATALOG), "--samples", str(samples))
    assert result.exit_code == 0, result.output
    assert re.search(r"^version 1: corner-market, \d+ rules, \d+ items, 1 samples$",
                     result.output, re.MULTILINE), result.output
    number, digest = _release_line(result.output)
    assert number == 1 and "(groups: *)" in result.output
    listed = Client(server.url, server.account.token).releases()
    assert [(r["number"], r["hash"], r["groups"]) for r in listed["releases"]] == \
        [(1, digest, ["*"])]
    assert listed["live"] == 1


def test_publish_to_a_group(server: Server) -> None:
    result = server.run("publish", str(PROGRAM), str(CATALOG), "--group", "canary")
    assert result.exit_code == 0, result.output
    assert "(groups: canary)" in result.output
    assert Client(server.url, server.account.token).releases()["live"] is None


def test_releases_table_and_rollback(server: Server, tmp_path: Path) -> None:
    first = _release_line(server.run("publish", str(PROGRAM), str(CATALOG)).output)
    second = _release_line(server.run("publish", str(_program_variant(tmp_path)),
                                      str(CATALOG)).output)
    assert first[1] != second[1]

    rolled = server.run("rollback", "1")
    assert rolled.exit_code == 0, rolled.output
    assert _release_line(rolled.output) == (3, first[1])
    assert "(rollback of release 1; groups: *)" in rolled.output

    table = server.run("releases")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["number", "version", "hash", "groups", "rollback_of",
                                "created_at"]
    rows = [line.split() for line in lines[1:4]]
    assert [row[:5] for row in rows] == [
        ["3", "1", first[1][7:19], "*", "1"],
        ["2", "2", second[1][7:19], "*", "-"],
        ["1", "1", first[1][7:19], "*", "-"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", row[5]) for row in rows)
    assert lines[4] == "every PoP runs release 3"


def test_rollback_refusal_shows_the_servers_error(server: Server) -> None:
    server.run("publish", str(PROGRAM), str(CATALOG))
    result = server.run("rollback", "1")  # release 1 is what runs already
    assert result.exit_code == 1
    assert re.search(r"POST /v1/merchants/\d+/rollback: 422: to: release 1", result.output)
    missing = server.run("rollback", "9")
    assert missing.exit_code == 1 and ": 404: to: no release 9" in missing.output
    assert "Traceback" not in result.output + missing.output


def test_simulate_prints_the_servers_quotes(server: Server) -> None:
    result = server.run("simulate", str(PROGRAM), str(CATALOG), str(REQUEST), str(REQUEST))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    expected = api.quote(api.load(str(PROGRAM), str(CATALOG)), str(REQUEST))
    assert answer["quotes"] == [expected, expected]
    assert Client(server.url, server.account.token).releases()["releases"] == []


def test_simulate_against_live_shows_changes_per_request_and_rule(server: Server,
                                                                  tmp_path: Path) -> None:
    nothing_live = server.run("simulate", str(PROGRAM), str(CATALOG), str(REQUEST),
                              "--against", "live")
    assert nothing_live.exit_code == 0, nothing_live.output
    assert "against nothing live for group *: 1 of 1 requests change" in nothing_live.output

    server.run("publish", str(PROGRAM), str(CATALOG))
    same = server.run("simulate", str(PROGRAM), str(CATALOG), str(REQUEST), "--against", "live")
    assert same.exit_code == 0, same.output
    assert "version 3 against release 1 (version 2) for group *: 0 of 1 requests change" \
        in same.output
    assert f"{REQUEST}: no change" in same.output

    doubled = server.run("simulate", str(_program_variant(tmp_path)), str(CATALOG),
                         str(REQUEST), "--against", "live")
    assert doubled.exit_code == 0, doubled.output
    assert "1 of 1 requests change" in doubled.output
    assert f"{REQUEST}:\n" in doubled.output
    assert "  rule summer-apparel: applied 398 -> applied 796 (+398)" in doubled.output
    assert "  total discount: 1097 -> 1495 (+398)" in doubled.output


def test_simulate_group_needs_against(server: Server) -> None:
    result = server.run("simulate", str(PROGRAM), str(CATALOG), str(REQUEST), "--group", "x")
    assert result.exit_code == 2 and "--group goes with --against live" in result.output


def test_an_invalid_program_shows_field_and_place(server: Server, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(PROGRAM.read_text().replace("cashback: 10%", "cashback: ten percent"))
    result = server.run("publish", str(broken), str(CATALOG))
    assert result.exit_code == 1
    assert re.search(r"POST /v1/merchants/\d+/versions: 422: \S+ \(source program, rule "
                     r"pickup-boost, line \d+", result.output), result.output
    assert "Traceback" not in result.output


def test_a_bad_token_is_exit_1_with_the_servers_message(server: Server) -> None:
    result = server.run("releases", token="prt_" + "A" * 43)
    assert result.exit_code == 1
    assert result.output == ("poprules: GET /v1/whoami: 401: authorization: unknown or "
                             "revoked token\n")
    read_only = server.plane.token(server.account.merchant_id, "read")
    refused = server.run("rollback", "1", token=read_only)
    assert refused.exit_code == 1
    assert "403: authorization: this token does not have the publish scope" in refused.output


def test_token_and_url_come_from_the_environment(server: Server) -> None:
    result = CliRunner().invoke(main, ["releases"], env={
        "POPRULES_URL": server.url, "POPRULES_TOKEN": server.account.token})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("number")
    missing = CliRunner().invoke(main, ["releases"], env={
        "POPRULES_URL": server.url, "POPRULES_TOKEN": ""})
    assert missing.exit_code == 1
    assert "a token is needed: --token or POPRULES_TOKEN" in missing.output


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_no_server_is_a_clear_message_not_a_traceback() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(main, ["releases", "--url", url, "--token", "prt_x"])
    assert result.exit_code == 1
    assert result.output.startswith(f"poprules: cannot reach {url}: ")
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(main, ["releases", "--url", "ftp://x", "--token", "prt_x"])
    assert bad.exit_code == 1 and "not an http(s) URL: 'ftp://x'" in bad.output


def test_an_unreadable_request_file_is_exit_2(server: Server, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    result = server.run("simulate", str(PROGRAM), str(CATALOG), str(junk))
    assert result.exit_code == 2 and f"{junk}: not JSON" in result.output


def test_api_error_carries_the_envelope(server: Server) -> None:
    client = Client(server.url, server.account.token)
    with pytest.raises(ApiError) as caught:
        client.call("GET", "/v1/nowhere")
    assert (caught.value.status, caught.value.field, caught.value.message) == \
        (404, None, "no such resource")
    assert str(caught.value) == "GET /v1/nowhere: 404: no such resource"
    with pytest.raises(ClientError, match="200, but the answer is not JSON"):
        client.call("GET", "/v1/audit?format=csv")
