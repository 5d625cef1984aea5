"""`poprules`: check programs and compute quotes from the command line.

Exit codes: 0 ok, 2 invalid input (the error names the field), 1 internal error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from poprules import api
from poprules.errors import InputError
from poprules.explain import render
from poprules.literals import format_utc
from wasm_build.lang.model import Points

EXIT_INVALID = 2
EXIT_INTERNAL = 1


def _guard(action: Callable[[], Any], *, json_errors: bool) -> Any:
    """Run `action`; turn bad input into exit 2 and any other failure into exit 1, without a
    stack trace."""
    try:
        return action()
    except InputError as exc:
        if json_errors:
            click.echo(json.dumps({"error": exc.to_json()}, ensure_ascii=False, indent=1))
        else:
            click.echo(exc.location(), err=True)
        sys.exit(EXIT_INVALID)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        _internal(exc)


def _internal(exc: Exception) -> NoReturn:
    click.echo(f"poprules: internal error: {type(exc).__name__}: {exc}", err=True)
    sys.exit(EXIT_INTERNAL)


_FILE = click.Path(dir_okay=False)


@click.group()
@click.version_option(package_name="poprules")
def main() -> None:
    """Merchants' cashback, coupon and pricing rules, evaluated exactly to the cent."""


@main.command()
@click.argument("program", type=_FILE)
@click.argument("catalog", type=_FILE)
def check(program: str, catalog: str) -> None:
    """Check a program and its catalog; print the first error as file:line:col."""
    checked = _guard(lambda: api.load(program, catalog), json_errors=False)
    click.echo(f"ok: {checked.name}: {len(checked.rules)} rules, {len(checked.coupons)} coupon "
               f"sets, {len(checked.catalog.items)} items")


@main.command()
@click.argument("program", type=_FILE)
@click.argument("catalog", type=_FILE)
@click.argument("request", type=_FILE)
def quote(program: str, catalog: str, request: str) -> None:
    """Print the quote of spec section 8 as JSON (or {"error": ...} with exit 2)."""
    answer = _guard(lambda: api.quote(api.load(program, catalog), request), json_errors=True)
    click.echo(json.dumps(answer, ensure_ascii=False, indent=1))


@main.command()
@click.argument("program", type=_FILE)
@click.argument("catalog", type=_FILE)
@click.argument("request", type=_FILE)
def explain(program: str, catalog: str, request: str) -> None:
    """Explain a quote for people: what applied and how much, what did not and why."""

    def run() -> str:
        checked = api.load(program, catalog)
        parsed = api.read_request(checked, request)
        answer = api.quote(checked, request)
        points = frozenset(r.id for r in checked.rules if isinstance(r.reward, Points))
        return render(answer, program=checked.name, at=format_utc(parsed.at), points_rules=points)

    click.echo(_guard(run, json_errors=False), nl=False)
