"""The control plane's Ed25519 signing keys.

Private halves live in files outside the database (the key directory, owner-only: the
directory 0700, each key 0600), or in one file the operator names; the database holds the
public halves and which key is current, so every worker and host that shares the database
signs with the same key and publishes the same keyring. Rotation makes a new current key
and keeps the old public keys: what they signed still verifies.

A key id is the first 16 hex digits of the SHA-256 of the raw public key.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nacl.signing import SigningKey as PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane import audit
from control_plane.config import ConfigError
from control_plane.storage.models import SigningKey

KEY_SUFFIX = ".key"


class KeyringError(ConfigError):
    """A key that is missing, unreadable, exposed, or cannot be rotated as asked."""


def key_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def _check_private(path: Path, mode: int) -> None:
    if mode & 0o077:
        raise KeyringError(f"the signing key {path} is open to other users (mode "
                           f"{stat.S_IMODE(mode):04o}); make it owner-only: chmod 600 {path}")


def read_key_file(path: Path) -> PrivateKey:
    """A key file holds the 32-byte Ed25519 seed as 64 hex digits."""
    try:
        _check_private(path, path.stat().st_mode)
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"cannot read the signing key {path}: {exc}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise KeyringError(f"the signing key {path} is not 64 hex digits (an Ed25519 seed)")
    return PrivateKey(seed)


class Keyring:
    def __init__(self, key_dir: Path, operator_key: Path | None = None) -> None:
        self.key_dir = key_dir
        self.operator_key = operator_key
        self._loaded: dict[str, PrivateKey] = {}

    # -- reading ---------------------------------------------------------------------------

    def current(self, session: Session) -> SigningKey:
        row = session.scalar(select(SigningKey).where(SigningKey.is_current))
        if row is None:
            raise KeyringError("the control plane has no signing key yet; start it once")
        return row

    def keys(self, session: Session) -> list[SigningKey]:
        """Every key, current and retired, oldest first: the keyring PoPs pin."""
        return list(session.scalars(select(SigningKey).order_by(SigningKey.id)))

    def private(self, key_id: str) -> PrivateKey:
        """The private half of a key this host holds."""
        key = self._loaded.get(key_id)
        if key is None:
            if self.operator_key is not None:
                key = read_key_file(self.operator_key)
                if key_id_of(bytes(key.verify_key)) != key_id:
                    raise KeyringError(f"the current key is {key_id}, but POPRULES_SIGNING_KEY "
                                       f"({self.operator_key}) holds another one")
            else:
                path = self.key_dir / f"{key_id}{KEY_SUFFIX}"
                if not path.exists():
                    raise KeyringError(f"the current signing key {key_id} is not in "
                                       f"{self.key_dir}: every host that signs needs the same "
                                       "key directory (or POPRULES_SIGNING_KEY)")
                key = read_key_file(path)
            self._loaded[key_id] = key
        return key

    # -- changing --------------------------------------------------------------------------

    def ensure(self, session: Session) -> str:
        """At start: make sure there is a current key whose private half this host holds,
        generating one on the first start (or taking the operator's); its key id."""
        with self._lock():
            current = session.scalar(select(SigningKey).where(SigningKey.is_current))
            if self.operator_key is not None:
                key = read_key_file(self.operator_key)
                if current is None or current.key_id != key_id_of(bytes(key.verify_key)):
                    return self._make_current(session, key, current, source="operator")
            elif current is None:
                return self._make_current(session, self._generate(), None, source="generated")
            self.private(current.key_id)
            return current.key_id

    def rotate(self, session: Session) -> tuple[str, str]:
        """A new current key; the old one stays in the keyring. (old key id, new key id)."""
        if self.operator_key is not None:
            raise KeyringError("the signing key is the operator's (POPRULES_SIGNING_KEY): to "
                               "rotate, point it at a new key file and restart")
        with self._lock():
            current = self.current(session)
            return current.key_id, self._make_current(session, self._generate(), current,
                                                      source="generated")

    def _make_current(self, session: Session, key: PrivateKey, previous: SigningKey | None,
                      *, source: str) -> str:
        public = bytes(key.verify_key)
        key_id = key_id_of(public)
        try:
            if previous is not None:
                previous.is_current = False
                session.flush()  # the old key first: at most one is current at any moment
            row = session.scalar(select(SigningKey).where(SigningKey.key_id == key_id))
            if row is None:
                session.add(SigningKey(key_id=key_id, public_key=public.hex(), is_current=True))
            else:
                row.is_current = True
            if previous is None:
                audit.record(session, audit.KEY_CREATED, key_id=key_id, source=source)
            else:
                audit.record(session, audit.KEY_ROTATED, key_id=key_id,
                             previous_key_id=previous.key_id, source=source)
            session.commit()
        except IntegrityError:
            # Another host made a current key at the same moment: use that one.
            session.rollback()
            self._forget(key_id, source)
            current = self.current(session)
            self.private(current.key_id)
            return current.key_id
        except BaseException:
            session.rollback()
            self._forget(key_id, source)
            raise
        self._loaded[key_id] = key
        return key_id

    def _generate(self) -> PrivateKey:
        key = PrivateKey.generate()
        path = self.key_dir / f"{key_id_of(bytes(key.verify_key))}{KEY_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(bytes(key).hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        return key

    def _forget(self, key_id: str, source: str) -> None:
        """Remove a generated key that never became current."""
        if source == "generated":
            (self.key_dir / f"{key_id}{KEY_SUFFIX}").unlink(missing_ok=True)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One process at a time makes or rotates keys on this host (gunicorn's workers all
        start at once); the unique current-key index covers hosts."""
        self._prepare_dir()
        with open(self.key_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _prepare_dir(self) -> None:
        if not self.key_dir.exists():
            self.key_dir.mkdir(mode=0o700, parents=True)
            self.key_dir.chmod(0o700)  # mkdir's mode passes through the umask
        mode = self.key_dir.stat().st_mode
        if mode & 0o022:
            raise KeyringError(f"the key directory {self.key_dir} is writable by other users "
                               f"(mode {stat.S_IMODE(mode):04o}); chmod 700 it")
