"""What a request sees: the app's control plane (database, keyring, settings) and one
database session for the whole request, closed — and rolled back unless committed — when
the request ends."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from control_plane.config import Settings
from control_plane.keyring import Keyring
from control_plane.storage.db import Database

EXTENSION = "poprules"


@dataclass(frozen=True)
class ControlPlane:
    settings: Settings
    db: Database
    keyring: Keyring


def install(app: Flask, plane: ControlPlane) -> None:
    app.extensions[EXTENSION] = plane
    app.teardown_appcontext(_close_session)


def control_plane() -> ControlPlane:
    plane: ControlPlane = current_app.extensions[EXTENSION]
    return plane


def session() -> Session:
    if "db_session" not in g:
        g.db_session = control_plane().db.sessions()
    db_session: Session = g.db_session
    return db_session


def _close_session(_exc: BaseException | None) -> None:
    db_session: Session | None = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
