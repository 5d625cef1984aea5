"""Storage: the SQLAlchemy models, the database handle and the Alembic schema versions."""

from control_plane.storage.db import Database
from control_plane.storage.models import ApiToken, AuditEvent, Base, Merchant, SigningKey

__all__ = ["ApiToken", "AuditEvent", "Base", "Database", "Merchant", "SigningKey"]
