"""`poprules pop`: enroll a self-hosted PoP, pin the control plane's keys, serve, inspect.

The keyring is pinned at enrollment (over the channel the operator chose: use https:// to a
control plane elsewhere) and changes only by `poprules pop pin-keys`, which adds the keys of
a rotation and never replaces or drops one. A PoP never trusts a key because a bundle names
it. Heavy imports happen inside the commands, so the rest of `poprules` starts fast.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from edge_worker.host.sync import ControlPlaneClient

EXIT_INVALID = 2
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_PUBLIC_KEY = re.compile(r"[0-9a-f]{64}")
Result = TypeVar("Result")
_STATE = click.option("--state", "state_dir", required=True,
                      type=click.Path(file_okay=False, writable=True),
                      help="The PoP's state directory.")


def _fail(message: str) -> NoReturn:
    click.echo(f"poprules pop: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _checked(action: Callable[[], Result]) -> Result:
    """Run `action`; an unusable state directory or an unreachable control plane is exit 2
    with its message, not a stack trace."""
    from edge_worker.host.state import StateError
    from edge_worker.host.sync import Unreachable

    try:
        return action()
    except (StateError, Unreachable) as exc:
        _fail(str(exc))


@click.group("pop")
def pop_group() -> None:
    """A self-hosted PoP: enroll it, serve quotes and checkouts, keep its receipts."""


def _keyring(client: ControlPlaneClient) -> dict[str, str]:
    answer = _checked(lambda: client.request("GET", "/v1/keys"))
    try:
        keys = json.loads(answer.body)["keys"] if answer.status == 200 else []
        ring = {k["key_id"]: k["public_key"] for k in keys}
    except (ValueError, TypeError, KeyError):
        ring = {}
    if not ring or not all(isinstance(i, str) and _KEY_ID.fullmatch(i) and isinstance(k, str)
                           and _PUBLIC_KEY.fullmatch(k) for i, k in ring.items()):
        _fail(f"GET /v1/keys: not a keyring ({answer.status}) {answer.body[:200]!r}")
    return ring


def _error_message(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return f"{error['field']}: {error['message']}" if error["field"] else error["message"]
    except (ValueError, TypeError, KeyError):
        return repr(body[:200])


@pop_group.command()
@click.option("--control-plane", "url", required=True,
              help="The control plane's base URL, e.g. https://rules.example.com")
@click.option("--token", required=True, envvar="POPRULES_ENROLLMENT_TOKEN",
              help="The enrollment secret (pre_...) the merchant made for this PoP.")
@_STATE
def enroll(url: str, token: str, state_dir: str) -> None:
    """Make this PoP's key, enroll it, pin the control plane's keyring, write the state."""
    from edge_worker.host.state import Identity, State
    from edge_worker.host.sync import ControlPlaneClient

    state = State(state_dir)
    if state.enrolled():
        _fail(f"{state_dir} holds an enrolled PoP already")
    client = ControlPlaneClient(url)
    ring = _keyring(client)  # before the one-time secret is spent
    state.create()
    # A key left by an enrollment that failed is reused: it was never enrolled.
    key = _checked(state.signing_key) if state.has_key() else state.new_key()
    answer = _checked(lambda: client.request("POST", "/v1/pops/enroll", json_body={
        "enrollment_token": token, "public_key": key.verify_key.encode().hex()}))
    if answer.status != 201:
        _fail(f"enrollment refused ({answer.status}): {_error_message(answer.body)}")
    pop = json.loads(answer.body)
    state.write_secret(pop["token"])
    state.write_keyring(ring)
    state.write_identity(Identity(client.base_url, pop["merchant_id"], pop["pop_id"],
                                  pop["name"], pop["group"]))
    click.echo(f"pop {pop['pop_id']} ({pop['name']}, group {pop['group']}) of merchant "
               f"{pop['merchant_id']} enrolled; {len(ring)} signing key(s) pinned")


@pop_group.command("pin-keys")
@_STATE
def pin_keys(state_dir: str) -> None:
    """Add the control plane's new signing keys (after `poprules cp rotate-key`) to the
    pinned keyring. A key id already pinned with another public key is refused."""
    from edge_worker.host.state import State
    from edge_worker.host.sync import ControlPlaneClient

    state = State(state_dir)
    identity = _checked(state.identity)
    pinned = _checked(state.keyring)
    fetched = _keyring(ControlPlaneClient(identity.control_plane))
    changed = sorted(i for i in fetched.keys() & pinned.keys() if fetched[i] != pinned[i])
    if changed:
        _fail(f"the control plane lists other public keys for pinned key ids "
              f"{', '.join(changed)}; nothing changed")
    added = sorted(fetched.keys() - pinned.keys())
    state.write_keyring({**pinned, **fetched})
    click.echo(f"pinned {len(added)} new key(s){': ' + ', '.join(added) if added else ''}")


@pop_group.command()
@_STATE
@click.option("--bind", default="127.0.0.1:8080", show_default=True,
              help="The address to listen on (host:port, or unix:PATH).")
@click.option("--poll", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between polls for a new release and redemption snapshot.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="Python threads running requests in the one worker process (they share "
              "one interpreter lock: more only wait longer).")
@click.option("--access-log", is_flag=True,
              help="Log a line per request (off by default: /metrics counts and times "
              "every request).")
def serve(state_dir: str, bind: str, poll: float, threads: int, access_log: bool) -> None:
    """Serve the PoP with granian (one worker process; the receipt chain has one writer).

    It starts on its last good release when the control plane is unreachable, polls for new
    ones, and uploads receipts in the background. SIGTERM stops it cleanly."""
    from edge_worker.host.state import State
    from edge_worker.host.wsgi import serve as run

    state = State(state_dir)
    # Checked here, so a broken directory is a message, not a worker failing to boot.
    _checked(state.identity)
    _checked(state.signing_key)
    _checked(state.secret)
    _checked(state.keyring)
    sys.stdout.flush()
    run(state.path, bind=bind, poll=poll, threads=threads, access_log=access_log)


@pop_group.command()
@_STATE
def status(state_dir: str) -> None:
    """The PoP's identity, stored release and snapshot, and receipts not yet uploaded."""
    from edge_worker.host.outbox import Outbox
    from edge_worker.host.state import OUTBOX, State

    state = State(state_dir)
    identity = _checked(state.identity)
    release = _checked(state.release)
    snapshot = _checked(state.snapshot)
    outbox = Outbox(state.path / OUTBOX)
    try:
        depth, head = outbox.depth(), outbox.head()
    finally:
        outbox.close()
    click.echo(json.dumps({
        "pop": identity.pop_id, "name": identity.name, "group": identity.group,
        "merchant": identity.merchant_id, "control_plane": identity.control_plane,
        "release": None if release is None else {"number": release.number,
                                                 "hash": release.hash},
        "snapshot": None if snapshot is None else snapshot.version,
        "outbox": {"depth": depth, "last_seq": head.seq},
    }, indent=1))
