"""The control plane: merchants, their tokens, the signing keyring and the audit trail, over
SQLite by default or PostgreSQL (docs/control_plane.md). The app factory is
`control_plane.app.create_app`; this package imports nothing itself, so the `poprules` CLI
starts without loading Flask or SQLAlchemy."""
