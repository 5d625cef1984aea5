"""`poprules publish`, `releases`, `rollback` and `simulate`: a merchant's commands against a
running control plane (control_plane/client.py does the HTTP).

The server is --url or POPRULES_URL, the token --token or POPRULES_TOKEN; the merchant is the
token's. Exit codes as the rest of `poprules`: 2 for bad local input (a file that cannot be
read), 1 when the server refuses (its field and message are shown) or cannot be reached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from control_plane.client import DEFAULT_URL, Client, ClientError

EXIT_REFUSED = 1
EXIT_INVALID = 2
HASH_SHOWN = 12  # hex digits of a release hash in the releases table

Command = TypeVar("Command", bound=Callable[..., Any])
Result = TypeVar("Result")

_FILE = click.Path(exists=True, dir_okay=False)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"poprules: {message}", err=True)
    sys.exit(code)


def connection_options(command: Command) -> Command:
    """The --url and --token options every server command takes."""
    command = click.option("--token", envvar="POPRULES_TOKEN", default="", show_envvar=True,
                           help="A merchant API token (prt_...).")(command)
    command = click.option("--url", envvar="POPRULES_URL", default=DEFAULT_URL,
                           show_default=True, show_envvar=True,
                           help="The control plane's base URL.")(command)
    return command


def client_for(url: str, token: str) -> Client:
    return served(lambda: Client(url, token))


def served(action: Callable[[], Result]) -> Result:
    try:
        return action()
    except ClientError as exc:
        _fail(str(exc), EXIT_REFUSED)


def _text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{path}: cannot read it: {exc}", EXIT_INVALID)


def _json(path: str) -> Any:
    try:
        return json.loads(_text(path))
    except ValueError as exc:
        _fail(f"{path}: not JSON: {exc}", EXIT_INVALID)


def _formats(program: str, catalog: str) -> tuple[str, str]:
    """The upload's formats, by file name, as `poprules check` reads them."""
    program_format = "json" if program.lower().endswith(".json") else "yaml"
    catalog_format = "csv" if catalog.lower().endswith(".csv") else "json"
    return program_format, catalog_format


def _upload(client: Client, program: str, catalog: str,
            samples: list[Any] | None = None) -> dict[str, Any]:
    program_format, catalog_format = _formats(program, catalog)
    program_text, catalog_text = _text(program), _text(catalog)
    return served(lambda: client.upload_version(program_text, program_format, catalog_text,
                                                 catalog_format, samples))


def _groups(release: dict[str, Any]) -> str:
    return ",".join(release.get("groups") or []) or "-"


@click.command()
@click.argument("program", type=_FILE)
@click.argument("catalog", type=_FILE)
@click.option("--samples", type=_FILE, metavar="FILE.json",
              help="A JSON list of requests (spec section 8) the release is checked on.")
@click.option("--group", help="Roll out to this group of PoPs only (default: every PoP).")
@connection_options
def publish(program: str, catalog: str, samples: str | None, group: str | None, url: str,
            token: str) -> None:
    """Upload PROGRAM and CATALOG as a new version and publish it as a release."""
    client = client_for(url, token)
    sample_list = None if samples is None else _json(samples)
    if sample_list is not None and not isinstance(sample_list, list):
        _fail(f"{samples}: expected a JSON list of requests", EXIT_INVALID)
    version = _upload(client, program, catalog, sample_list)
    click.echo(f"version {version['number']}: {version['program']}, {version['rules']} rules, "
               f"{version['items']} items, {version['samples']} samples")
    release = served(lambda: client.publish(version["number"], group))
    click.echo(f"release {release['number']}: {release['hash']} (groups: {_groups(release)})")


@click.command()
@connection_options
def releases(url: str, token: str) -> None:
    """List the merchant's releases, newest first."""
    client = client_for(url, token)
    answer = served(client.releases)
    rows = [("number", "version", "hash", "groups", "rollback_of", "created_at")]
    for release in answer["releases"]:
        digest = release["hash"].partition(":")[2] or release["hash"]
        rows.append((str(release["number"]), str(release["version"]), digest[:HASH_SHOWN],
                     _groups(release),
                     "-" if release["rollback_of"] is None else str(release["rollback_of"]),
                     release["created_at"]))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                      strict=True)).rstrip())
    if answer.get("live") is not None:
        click.echo(f"every PoP runs release {answer['live']}")


@click.command()
@click.argument("number", type=click.IntRange(min=1))
@click.option("--group", help="Roll back this group of PoPs only (default: every PoP).")
@connection_options
def rollback(number: int, group: str | None, url: str, token: str) -> None:
    """Run release NUMBER's content again, as a new release."""
    client = client_for(url, token)
    release = served(lambda: client.rollback(number, group))
    click.echo(f"release {release['number']}: {release['hash']} (rollback of release "
               f"{release['rollback_of']}; groups: {_groups(release)})")


@click.command()
@click.argument("program", type=_FILE)
@click.argument("catalog", type=_FILE)
@click.argument("requests", nargs=-1, required=True, type=_FILE, metavar="REQUEST...")
@click.option("--against", type=click.Choice(["live"]),
              help="Show what the program changes against the live release, per request and "
                   "per rule, instead of its quotes.")
@click.option("--group", help="With --against: the release this group of PoPs runs "
                              "(default: every PoP).")
@connection_options
def simulate(program: str, catalog: str, requests: tuple[str, ...], against: str | None,
             group: str | None, url: str, token: str) -> None:
    """Quote REQUEST files with PROGRAM and CATALOG on the server, without publishing.

    The program is uploaded as a new version (a draft; nothing is released). Without
    --against, prints the server's quotes as JSON; with --against live, what would change.
    """
    if group is not None and against is None:
        raise click.UsageError("--group goes with --against live")
    client = client_for(url, token)
    bodies = [_json(path) for path in requests]
    version = _upload(client, program, catalog)
    if against is None:
        answer = served(lambda: client.simulate(version["number"], bodies))
        click.echo(json.dumps(answer, ensure_ascii=False, indent=1))
        return
    answer = served(lambda: client.diff(version["number"], bodies, group))
    live = answer.get("against")
    click.echo(f"version {version['number']} against "
               + ("nothing live" if live is None else
                  f"release {live['release']} (version {live['version']})")
               + f" for group {answer.get('group', '*')}: {answer['changed']} of "
                 f"{len(bodies)} requests change")
    for path, change in zip(requests, answer["requests"], strict=True):
        for line in _change_lines(path, change):
            click.echo(line)


def _change_lines(path: str, change: dict[str, Any]) -> list[str]:
    if "error" in change:
        error = change["error"]
        return [f"{path}: error: {error.get('field')}: {error.get('message')}"]
    if not change["changed"]:
        return [f"{path}: no change"]
    lines = [f"{path}:"]
    for name, total in change["totals"].items():
        lines.append(f"  total {name}: {_figure(total['live'])} -> {_figure(total['draft'])} "
                     f"({total['change']:+d})")
    for rule in change["rules"]:
        lines.append(f"  rule {rule['rule']}: {_report(rule['live'])} -> "
                     f"{_report(rule['draft'])} ({rule['change']:+d})")
    return lines


def _figure(value: Any) -> str:
    return "none" if value is None else str(value)


def _report(report: dict[str, Any] | None) -> str:
    """A rule's report in a few words: its status and amount (minor units)."""
    if report is None:
        return "absent"
    amount = report.get("amount")
    return str(report.get("status", "?")) + ("" if amount is None else f" {amount}")


COMMANDS = (publish, releases, rollback, simulate)
