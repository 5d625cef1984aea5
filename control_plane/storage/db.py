"""The database handle: one engine per app, a session per request, the schema at Alembic's
head.

SQLite needs no set-up: its file is created and migrated on first start (under a file lock,
since every gunicorn worker starts the app). PostgreSQL is migrated by the operator
(`poprules cp migrate`) and the app refuses to start on an older schema rather than run
against tables it does not know.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from control_plane.config import ConfigError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def database_url(url: str) -> URL:
    """The URL with a driver SQLAlchemy has: a bare `postgresql://` (or Heroku's
    `postgres://`) means psycopg 3, the driver this project installs."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds
        raise ConfigError(f"DATABASE_URL is not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("DATABASE_URL: an in-memory SQLite database is not shared between "
                          "connections; give a file, sqlite:////path/to/poprules.db")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"DATABASE_URL: {parsed.get_backend_name()} is not supported; "
                          "use sqlite or postgresql")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    # WAL lets readers go on while a worker writes; busy_timeout makes a writer wait its turn.
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 10000")
    cursor.close()


def alembic_config(connection: Any | None = None) -> Config:
    """Alembic's configuration without an ini file: the scripts ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class Database:
    def __init__(self, url: str) -> None:
        self.url = database_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            Path(self.url.database or "").parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.engine: Engine = create_engine(self.url)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session outside a request (CLI commands, start-up); rolled back unless
        committed."""
        with self.sessions() as session:
            yield session

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        with self._migration_lock(), self.engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)

    def downgrade(self, revision: str) -> None:
        with self._migration_lock(), self.engine.begin() as connection:
            command.downgrade(alembic_config(connection), revision)

    def prepare(self) -> None:
        """Bring a SQLite file to head; check that a PostgreSQL schema is there already."""
        if self.is_sqlite:
            self.upgrade()
            return
        current, head = self.revision(), head_revision()
        if current != head:
            raise ConfigError(f"the database schema is at revision {current or 'none'} and "
                              f"this control plane needs {head}: run `poprules cp migrate`")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Serialise migrations of one SQLite file between processes; PostgreSQL's
        transactional DDL and the version table's row serialise its own."""
        if not self.is_sqlite:
            yield
            return
        with open(f"{self.url.database}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def dispose(self) -> None:
        self.engine.dispose()
