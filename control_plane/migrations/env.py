"""Alembic's environment: migrate the connection the control plane hands over
(`control_plane.storage.db.Database.upgrade`), or, for `alembic revision --autogenerate`
during development, the database named by DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from control_plane.storage.db import database_url
from control_plane.storage.models import Base


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters a table by copying it; batch mode makes later migrations portable.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")

given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = create_engine(database_url(os.environ["DATABASE_URL"]))
    with engine.begin() as own:
        run(own)
    engine.dispose()
