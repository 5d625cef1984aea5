"""Every storage and API test runs twice: on a SQLite file and on PostgreSQL.

PostgreSQL is the server `POPRULES_TEST_POSTGRES_URL` names (CI's `.ci/run` starts one);
without it, this session starts a throwaway one with `scripts/postgres.sh` and stops it at
the end, so the PostgreSQL half is never skipped. Each test gets its own empty schema.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.test import TestResponse

from control_plane import deployer
from control_plane.app import create_app
from control_plane.auth import SCOPES
from control_plane.config import KEYS
from control_plane.context import ControlPlane
from control_plane.storage.db import Database, database_url
from control_plane.storage.models import Merchant
from control_plane.tokens import create_merchant, create_token
from tests.conftest import ROOT

POSTGRES_ENV = "POPRULES_TEST_POSTGRES_URL"
POSTGRES_SCRIPT = ROOT / "scripts" / "postgres.sh"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own DATABASE_URL, signing key or Cloudflare account must never reach a
    test."""
    for key in (*KEYS, *deployer.SETTINGS):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        yield configured
        return
    # Not under pytest's own temp dir: the server runs as the postgres user, which must be
    # able to reach its directory.
    directory = tempfile.mkdtemp(prefix="poprules-pg-")
    started = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start", directory],
                             capture_output=True, text=True, timeout=600, check=False)
    if started.returncode != 0:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", directory], check=False)
        pytest.fail(f"could not start PostgreSQL for the tests:\n{started.stderr}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", directory], check=False,
                       capture_output=True)


@pytest.fixture(scope="session")
def postgres_admin(postgres_server: str) -> Iterator[Engine]:
    engine = create_engine(database_url(postgres_server), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'poprules.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def migrated(database: str) -> str:
    """The URL of a database at the newest schema (PostgreSQL is not migrated on start)."""
    db = Database(database)
    db.upgrade()
    db.dispose()
    return database


@dataclass
class Account:
    merchant_id: int
    token: str  # every scope
    token_id: int


class Plane:
    """A started control plane, its test client and helpers to set up merchants."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.state: ControlPlane = app.extensions["poprules"]

    def merchant(self, name: str) -> Account:
        with self.state.db.session() as session:
            merchant = create_merchant(session, name)
            token, secret = create_token(session, merchant, frozenset(SCOPES), "test",
                                         actor_token_id=None)
            session.commit()
            return Account(merchant.id, secret, token.id)

    def token(self, merchant_id: int, *scopes: str) -> str:
        with self.state.db.session() as session:
            merchant = session.get(Merchant, merchant_id)
            assert merchant is not None
            _, secret = create_token(session, merchant, frozenset(scopes), "test",
                                     actor_token_id=None)
            session.commit()
            return secret

    def call(self, method: str, path: str, token: str | None = None,
             **kwargs: Any) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.open(path, method=method, headers=headers, **kwargs)


def start_app(database: str, key_dir: Path, **config: Any) -> Flask:
    return create_app({"DATABASE_URL": database, "POPRULES_KEY_DIR": str(key_dir),
                       "TESTING": True, **config})


@pytest.fixture
def plane(migrated: str, tmp_path: Path) -> Iterator[Plane]:
    app = start_app(migrated, tmp_path / "keys")
    yield Plane(app)
    app.extensions["poprules"].db.dispose()


def error_of(response: TestResponse) -> dict[str, Any]:
    """The error of a JSON error answer (and a check that it is one)."""
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "message"}, body
    error: dict[str, Any] = body["error"]
    return error
