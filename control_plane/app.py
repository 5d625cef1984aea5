"""The app factory.

    app = create_app()                                  # settings from the environment
    app = create_app({"DATABASE_URL": "postgresql://..."})  # or given, for tests and embedding

Starting the app brings SQLite to the newest schema (PostgreSQL must already be there:
`poprules cp migrate`) and makes sure the signing key exists, so the first request never
waits on either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from control_plane import console, errors
from control_plane.api import BLUEPRINTS
from control_plane.config import KEYS, Settings
from control_plane.context import ControlPlane, install
from control_plane.keyring import Keyring
from control_plane.storage.db import Database
from control_plane.wire import MAX_ID


def settings() -> Settings:
    """The settings `create_app()` would use, from the environment (for CLI commands)."""
    return Settings.load(None, os.environ, Path(Flask(__name__).instance_path))


def start(config: Settings) -> ControlPlane:
    """Open the database, bring or check its schema, and make sure of the signing key."""
    db = Database(config.database_url)
    try:
        db.prepare()
        keyring = Keyring(config.key_dir, config.signing_key)
        with db.session() as session:
            keyring.ensure(session)
    except BaseException:
        db.dispose()
        raise
    return ControlPlane(config, db, keyring)


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: a number no row can have is 404 before any view runs,
    instead of an out-of-range error from the database. (Not `max=`: Werkzeug would then
    try the path's other routes and answer 405.)"""

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise NotFound()
        return number


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.url_map.converters["int"] = IdConverter
    resolved = Settings.load(config, os.environ, Path(app.instance_path))
    app.config.update({k: v for k, v in (config or {}).items() if k not in KEYS})
    app.config["MAX_CONTENT_LENGTH"] = resolved.max_content_length
    app.json.sort_keys = False  # type: ignore[attr-defined]  # fields in the order written

    install(app, start(resolved))
    errors.register(app)
    app.before_request(_refuse_oversized)
    for blueprint in (*BLUEPRINTS, *console.BLUEPRINTS):
        app.register_blueprint(blueprint)
    return app


def _refuse_oversized() -> None:
    """Refuse a body declared too large before any view runs (views that never read a body
    would otherwise accept it); an undeclared one is cut off as it is read."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None \
            and request.content_length > limit:
        raise RequestEntityTooLarge()
