"""`poprules reconcile POP`: a PoP's receipts issued, received, booked, flagged and held, and
every missing seq, as the control plane sees them (GET /v1/pops/<id>/reconciliation).

Same connection options and exit codes as the other server commands (client_cli.py).
"""

from __future__ import annotations

from typing import Any

import click

from control_plane.client import Client, ClientError
from control_plane.client_cli import client_for, connection_options, served


def pop_id(client: Client, pop: str) -> int:
    """The id of the merchant's PoP named `pop`, or whose id it is (a name wins: names may
    be digits too)."""
    listed = client.call("GET", client.merchant_path("/pops"))["pops"]
    for row in listed:
        if row["name"] == pop:
            return int(row["id"])
    for row in listed:
        if pop.isascii() and pop.isdecimal() and row["id"] == int(pop):
            return int(row["id"])
    raise ClientError(f"no PoP of this merchant is named or numbered {pop!r}")


def render(answer: dict[str, Any]) -> list[str]:
    """The reconciliation as a person reads it: counts, then gaps, then each receipt not
    booked with its reason."""
    gaps = [f"{start}" if start == end else f"{start}-{end}" for start, end in answer["gaps"]]
    missing = sum(end - start + 1 for start, end in answer["gaps"])
    lines = [f"PoP {answer['pop']} ({answer['name']})"]
    counts = [("issued", answer["issued"]), ("received", answer["received"]),
              ("booked", answer["booked"]), ("flagged", answer["flagged"]),
              ("held", answer["held"]), ("missing", missing)]
    lines += [f"  {label:<9}{value}" for label, value in counts]
    lines.append("  gaps     " + (", ".join(gaps) if gaps else "none"))
    if answer["flags"]:
        rows = [("seq", "id", "status", "reason")] + [
            (str(f["seq"]), f["id"], f["status"], f["reason"] or "") for f in answer["flags"]]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        lines += [("  " + "  ".join(cell.ljust(width) for cell, width in
                                   zip(row[:3], widths, strict=True)) + "  " + row[3]).rstrip()
                  for row in rows]
    return lines


@click.command()
@click.argument("pop")
@click.option("--issued", type=click.IntRange(min=0),
              help="The PoP's own count of receipts issued (its status page), so that its "
                   "last receipts, if missing, are named too.")
@connection_options
def reconcile(pop: str, issued: int | None, url: str, token: str) -> None:
    """Reconcile POP (its name or id): receipts issued vs received, booked, flagged, held,
    and every gap in its chain."""
    client = client_for(url, token)
    number = served(lambda: pop_id(client, pop))
    query = "" if issued is None else f"?issued={issued}"
    answer = served(lambda: client.call("GET", f"/v1/pops/{number}/reconciliation{query}"))
    for line in render(answer):
        click.echo(line)
