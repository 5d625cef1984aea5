"""`poprules cp`: the operator's commands for the control plane.

Flask, SQLAlchemy and Alembic are imported inside the commands, so the rest of the
`poprules` CLI starts as fast as before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from control_plane.context import ControlPlane

EXIT_INVALID = 2
Result = TypeVar("Result")


def _fail(message: str) -> NoReturn:
    click.echo(f"poprules cp: {message}", err=True)
    sys.exit(EXIT_INVALID)


def _checked(action: Callable[[], Result]) -> Result:
    """Run `action`; a setting or key the control plane cannot work with is exit 2 with
    its message, not a stack trace."""
    from control_plane.config import ConfigError

    try:
        return action()
    except ConfigError as exc:
        _fail(str(exc))


def _start() -> ControlPlane:
    from control_plane.app import settings, start

    return _checked(lambda: start(settings()))


@click.group("cp")
def cp_group() -> None:
    """The control plane: serve it, migrate its database, create merchants, rotate its key.

    Settings come from the environment: DATABASE_URL (default: SQLite in the instance
    directory), POPRULES_KEY_DIR, POPRULES_SIGNING_KEY, MAX_CONTENT_LENGTH.
    """


@cp_group.command()
def migrate() -> None:
    """Bring the database's schema to the newest revision (SQLite also gets it on start)."""
    from control_plane.app import settings
    from control_plane.storage.db import Database

    db = _checked(lambda: Database(settings().database_url))
    try:
        before = db.revision()
        db.upgrade()
        click.echo(f"schema: {before or 'empty'} -> {db.revision()}")
    finally:
        db.dispose()


@cp_group.command()
@click.option("--merchant", "name", required=True, help="The new merchant's name.")
def bootstrap(name: str) -> None:
    """Create a merchant and its first token (every scope), and print the token once."""
    from sqlalchemy import select

    from control_plane.auth import SCOPES
    from control_plane.storage.models import Merchant
    from control_plane.tokens import NAME_LIMIT, create_merchant, create_token

    name = name.strip()
    if not name or len(name) > NAME_LIMIT:
        _fail(f"--merchant: a non-blank name of at most {NAME_LIMIT} characters")
    plane = _start()
    try:
        with plane.db.session() as session:
            if session.scalar(select(Merchant).where(Merchant.name == name)) is not None:
                _fail(f"a merchant named {name!r} exists already")
            merchant = create_merchant(session, name)
            token, secret = create_token(session, merchant, frozenset(SCOPES), "bootstrap",
                                         actor_token_id=None)
            session.commit()
    finally:
        plane.db.dispose()
    click.echo(f"merchant {merchant.id}: {name}")
    click.echo(f"token {token.id} ({', '.join(SCOPES)}), shown this once; keep it secret:")
    click.echo(secret)


@cp_group.command("rotate-key")
def rotate_key() -> None:
    """Make a new signing key current; the old public key stays in the keyring, so what it
    signed still verifies. Running servers sign with the new key from their next request."""
    plane = _start()
    try:
        with plane.db.session() as session:
            old, new = _checked(lambda: plane.keyring.rotate(session))
    finally:
        plane.db.dispose()
    click.echo(f"signing key: {old} -> {new}")


@cp_group.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True,
              help="The address to listen on (host:port, or unix:PATH).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes.")
def serve(bind: str, workers: int) -> None:
    """Serve the control plane with gunicorn.

    The database and the signing key are prepared here, once, before the workers start, so
    they never race for a first start; then this process becomes gunicorn's master."""
    _start().db.dispose()
    sys.stdout.flush()
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers),
        # No control socket: it is one path per user, which a second server would fight for.
        "--access-logfile", "-", "--no-control-socket", "control_plane.app:create_app()",
    ])
