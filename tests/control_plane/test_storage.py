"""The schema: migrations from empty to head and back, models that match them, times in
UTC on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, select
from sqlalchemy.exc import StatementError

from control_plane.config import ConfigError
from control_plane.storage.db import Database, head_revision
from control_plane.storage.models import Base, Merchant
from poprules.cli import main
from tests.control_plane.conftest import start_app

TABLES = {"merchants", "api_tokens", "audit_events", "signing_keys", "program_versions",
          "releases", "rollouts", "pops", "enrollment_tokens", "coupon_codes", "redemptions",
          "redemption_snapshots", "receipts", "journals", "postings", "claim_tokens", "throttles"}


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_migrations_from_empty_to_head_and_back(database: str) -> None:
    db = Database(database)
    try:
        assert (db.revision(), _tables(db)) == (None, set())
        db.upgrade()
        assert (db.revision(), _tables(db)) == (head_revision(), TABLES)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == [], \
                "the models and the migrations disagree: write a migration"
        db.downgrade("base")
        assert (db.revision(), _tables(db)) == (None, set())
        db.upgrade()
        assert db.revision() == head_revision()
    finally:
        db.dispose()


def test_migrate_command(database: str) -> None:
    result = CliRunner().invoke(main, ["cp", "migrate"], env={"DATABASE_URL": database})
    assert result.exit_code == 0, result.output
    assert result.output == f"schema: empty -> {head_revision()}\n"
    again = CliRunner().invoke(main, ["cp", "migrate"], env={"DATABASE_URL": database})
    assert again.output == f"schema: {head_revision()} -> {head_revision()}\n"


def test_start_migrates_sqlite_but_not_postgresql(database: str, tmp_path: Path) -> None:
    if database.startswith("sqlite"):
        app = start_app(database, tmp_path / "keys")
        app.extensions["poprules"].db.dispose()
        db = Database(database)
        assert db.revision() == head_revision()
        db.dispose()
    else:
        with pytest.raises(ConfigError, match="run `poprules cp migrate`"):
            start_app(database, tmp_path / "keys")
        assert not (tmp_path / "keys").exists()  # refused before touching the keyring


def test_times_come_back_aware_in_utc(migrated: str) -> None:
    db = Database(migrated)
    try:
        east = timezone(timedelta(hours=5, minutes=30))
        moment = datetime(2026, 7, 4, 15, 30, 0, 123456, tzinfo=east)
        with db.session() as session:
            session.add(Merchant(name="alpha", created_at=moment))
            session.commit()
        with db.session() as session:
            stored = session.scalars(select(Merchant.created_at)).one()
        assert stored == moment and stored.tzinfo == UTC
        assert stored.isoformat() == "2026-07-04T10:00:00.123456+00:00"
        with db.session() as session:
            session.add(Merchant(name="beta", created_at=datetime(2026, 7, 4)))
            with pytest.raises(StatementError, match="naive datetime"):
                session.commit()
    finally:
        db.dispose()


def test_bare_postgresql_url_means_psycopg() -> None:
    assert Database("postgresql://u@127.0.0.1:1/db").url.drivername == "postgresql+psycopg"
    assert Database("postgres://u@127.0.0.1:1/db").url.drivername == "postgresql+psycopg"
