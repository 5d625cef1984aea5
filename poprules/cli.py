"""`poprules`: check programs and compute quotes from the command line.

Exit codes: 0 ok, 2 invalid input (the error names the field), 1 internal error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from poprules import api
from poprules.bundle import BundleError
from poprules.errors import InputError
from poprules.explain import render
from poprules.literals import format_utc
from wasm_build.lang.model import Points

if TYPE_CHECKING:
    from edge_worker.core.release import Release

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
@click.argument("program", type=_FILE, required=False)
@click.argument("catalog", type=_FILE, required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Where to write the release bundle.")
@click.option("--target", type=click.Choice(["bundle", "cloudflare"]), default="bundle",
              show_default=True, help="bundle: compile PROGRAM CATALOG; cloudflare: a Worker "
              "directory from a signed release (docs/cloudflare.md).")
@click.option("--release", "release_bundle", type=_FILE, help="cloudflare: the release's bundle.")
@click.option("--signature", type=_FILE, help="cloudflare: the release's JSON (number, hash, "
              "key_id, signature).")
@click.option("--state", type=click.Path(file_okay=False),
              help="cloudflare: the Worker PoP's enrolled state directory.")
@click.option("--out", type=click.Path(file_okay=False), help="cloudflare: the directory to write.")
def build(program: str | None, catalog: str | None, output: str | None, target: str,
          release_bundle: str | None, signature: str | None, state: str | None,
          out: str | None) -> None:
    """Compile a program and its catalog into a release bundle (same inputs, same bytes), or
    with --target cloudflare write a deployable Worker directory for a signed release."""
    if target == "cloudflare":
        from edge_worker.cloudflare.build import cli_build

        cli_build(release_bundle, signature, state, out)
        return
    if program is None or catalog is None or output is None:
        raise click.UsageError("give PROGRAM CATALOG -o OUTPUT")

    def run() -> tuple[str, int]:
        data = api.build(api.load(program, catalog))
        Path(output).write_bytes(data)
        return api.load_release(data).hash, len(data)

    release, size = _guard(run, json_errors=False)
    click.echo(f"{output}: {size:,} bytes, release {release}")


@main.command()
@click.argument("files", nargs=-1, type=_FILE, metavar="[PROGRAM CATALOG] REQUEST")
@click.option("--bundle", type=_FILE, help="Quote from a built release bundle.")
@click.option("--engine", type=click.Choice(["wasm", "python"]), default="wasm",
              show_default=True,
              help="wasm: the compiled module; python: the reference evaluator.")
def quote(files: tuple[str, ...], bundle: str | None, engine: str) -> None:
    """Print the quote of spec section 8 as JSON (or {"error": ...} with exit 2).

    From sources: PROGRAM CATALOG REQUEST. From a release: --bundle BUNDLE REQUEST (the
    answer then names the release). The answer is the same with either engine.
    """
    if bundle is not None:
        if len(files) != 1 or engine != "wasm":
            raise click.UsageError("with --bundle give only REQUEST (a bundle runs its module)")

        def from_bundle() -> dict[str, Any]:
            return api.quote_bundle(_release(bundle), files[0])

        answer = _guard(from_bundle, json_errors=True)
    else:
        if len(files) != 3:
            raise click.UsageError("give PROGRAM CATALOG REQUEST, or --bundle BUNDLE REQUEST")
        program, catalog, request = files
        answer = _guard(lambda: api.quote(api.load(program, catalog), request,
                                          engine="python" if engine == "python" else "wasm"),
                        json_errors=True)
    click.echo(json.dumps(answer, ensure_ascii=False, indent=1))


def _release(path: str) -> Release:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError("bundle", f"cannot read the bundle: {exc.strerror}").from_source(
            path) from None
    try:
        return api.load_release(data)
    except BundleError as exc:
        raise InputError("bundle", str(exc)).from_source(path) from None


@main.command()
@click.argument("program", type=_FILE)
@click.argument("catalog", type=_FILE)
@click.argument("request", type=_FILE)
def explain(program: str, catalog: str, request: str) -> None:
    """Explain a quote for people: what applied and how much, what did not and why."""

    def run() -> str:
        checked = api.load(program, catalog)
        parsed = api.read_request(checked, request)
        answer = api.quote(checked, request, engine="python")
        points = frozenset(r.id for r in checked.rules if isinstance(r.reward, Points))
        return render(answer, program=checked.name, at=format_utc(parsed.at), points_rules=points)

    click.echo(_guard(run, json_errors=False), nl=False)


from control_plane.cli import cp_group
from control_plane.client_cli import COMMANDS as SERVER_COMMANDS

main.add_command(cp_group)
for _command in SERVER_COMMANDS:
    main.add_command(_command)

from edge_worker.host.cli import pop_group

main.add_command(pop_group)

from control_plane.reconcile_cli import reconcile

main.add_command(reconcile)
