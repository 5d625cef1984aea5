"""A PoP's state directory: what it needs to start, and serve, with the control plane away.

    pop.json       identity: control plane URL, merchant id, PoP id, name, group, secret file
    pop.key        the PoP's Ed25519 seed (32 bytes, mode 0600): it signs every receipt
    pop.secret     the PoP's bearer secret (prp_..., mode 0600) for the control plane's API
    keyring.json   the control plane's public keys pinned at enrollment {key id: hex}
    release.json   the last good release {number, hash, key_id, signature, bundle: file name}
    release-<hex>.bundle   its bundle, named by its hash
    snapshot.json  the last good redemption snapshot {version, key_id, signature, body: text}
    outbox.db      receipts not yet acknowledged (edge_worker.host.outbox)

Every file is written whole or not at all (temp file, fsync, rename, fsync of the directory),
so a PoP killed at any moment restarts with its previous or its new state, never a torn one.
The bundle is named by its hash and written before the release.json that names it: the two
files can never disagree, whichever moment the power goes.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

IDENTITY = "pop.json"
KEY = "pop.key"
SECRET = "pop.secret"
KEYRING = "keyring.json"
RELEASE = "release.json"
SNAPSHOT = "snapshot.json"
OUTBOX = "outbox.db"
_BUNDLE_PREFIX, _BUNDLE_SUFFIX = "release-", ".bundle"
_PRIVATE = 0o600


class StateError(RuntimeError):
    """A state directory this PoP cannot start from (missing, unreadable, unsafe)."""


@dataclass(frozen=True)
class Identity:
    control_plane: str  # base URL, no trailing slash
    merchant_id: int
    pop_id: int
    name: str
    group: str
    secret: str = SECRET  # the secret's file, relative to the state directory


@dataclass(frozen=True)
class StoredRelease:
    number: int
    hash: str
    key_id: str
    signature: str  # hex
    bundle: bytes


@dataclass(frozen=True)
class StoredSnapshot:
    version: int
    key_id: str
    signature: str  # hex
    body: bytes


class State:
    """One PoP's directory. Reads check shape only: signatures are `sync`'s to verify."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def create(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    # identity, key, secret ---------------------------------------------------------------

    def enrolled(self) -> bool:
        return (self.path / IDENTITY).exists()

    def identity(self) -> Identity:
        data = self._json(IDENTITY)
        try:
            identity = Identity(str(data["control_plane"]), data["merchant_id"], data["pop_id"],
                                str(data["name"]), str(data["group"]), str(data["secret"]))
        except (KeyError, TypeError) as exc:
            raise StateError(f"{self.path / IDENTITY}: not a PoP identity ({exc})") from None
        if type(identity.merchant_id) is not int or type(identity.pop_id) is not int:
            raise StateError(f"{self.path / IDENTITY}: merchant_id and pop_id are integers")
        return identity

    def write_identity(self, identity: Identity) -> None:
        self.write(IDENTITY, _dumps({
            "control_plane": identity.control_plane, "merchant_id": identity.merchant_id,
            "pop_id": identity.pop_id, "name": identity.name, "group": identity.group,
            "secret": identity.secret}))

    def has_key(self) -> bool:
        return (self.path / KEY).exists()

    def new_key(self) -> SigningKey:
        if self.has_key():
            raise StateError(f"{self.path / KEY} exists already; a PoP keeps its key")
        key = SigningKey.generate()
        self.write(KEY, bytes(key), mode=_PRIVATE)
        return key

    def signing_key(self) -> SigningKey:
        seed = self._private(KEY)
        if len(seed) != 32:
            raise StateError(f"{self.path / KEY}: expected a 32-byte Ed25519 seed")
        return SigningKey(seed)

    def write_secret(self, secret: str, name: str = SECRET) -> None:
        self.write(name, secret.encode("ascii"), mode=_PRIVATE)

    def secret(self) -> str:
        return self._private(self.identity().secret).decode("ascii").strip()

    # keyring ------------------------------------------------------------------------------

    def keyring(self) -> dict[str, str]:
        data = self._json(KEYRING)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise StateError(f"{self.path / KEYRING}: expected {{key id: public key hex}}")
        return {str(k): str(v) for k, v in data.items()}

    def write_keyring(self, keys: dict[str, str]) -> None:
        self.write(KEYRING, _dumps(dict(sorted(keys.items()))))

    # release and snapshot -----------------------------------------------------------------

    def release(self) -> StoredRelease | None:
        if not (self.path / RELEASE).exists():
            return None
        data = self._json(RELEASE)
        try:
            name = str(data["bundle"])
            if Path(name).name != name:
                raise StateError(f"{self.path / RELEASE}: the bundle must be in the directory")
            bundle = (self.path / name).read_bytes()
            return StoredRelease(int(data["number"]), str(data["hash"]), str(data["key_id"]),
                                 str(data["signature"]), bundle)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{self.path / RELEASE}: not a stored release ({exc})") from None
        except OSError as exc:
            raise StateError(f"cannot read the stored bundle: {exc}") from None

    def write_release(self, release: StoredRelease) -> None:
        name = _BUNDLE_PREFIX + release.hash.removeprefix("sha256:") + _BUNDLE_SUFFIX
        self.write(name, release.bundle)
        self.write(RELEASE, _dumps({"number": release.number, "hash": release.hash,
                                    "key_id": release.key_id, "signature": release.signature,
                                    "bundle": name}))
        for old in self.path.glob(f"{_BUNDLE_PREFIX}*{_BUNDLE_SUFFIX}"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def snapshot(self) -> StoredSnapshot | None:
        if not (self.path / SNAPSHOT).exists():
            return None
        data = self._json(SNAPSHOT)
        try:
            return StoredSnapshot(int(data["version"]), str(data["key_id"]),
                                  str(data["signature"]), str(data["body"]).encode("utf-8"))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{self.path / SNAPSHOT}: not a stored snapshot ({exc})") from None

    def write_snapshot(self, snapshot: StoredSnapshot) -> None:
        # One file, so the body and its signature are replaced together.
        self.write(SNAPSHOT, _dumps({"version": snapshot.version, "key_id": snapshot.key_id,
                                     "signature": snapshot.signature,
                                     "body": snapshot.body.decode("utf-8")}))

    # files --------------------------------------------------------------------------------

    def write(self, name: str, data: bytes, *, mode: int = 0o644) -> None:
        """Replace `name` with `data` atomically and durably."""
        self.create()
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(handle, "wb") as file:
                os.fchmod(file.fileno(), mode)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path / name)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _json(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.path / name).read_bytes())
        except FileNotFoundError:
            raise StateError(f"{self.path / name} is missing: is this an enrolled PoP's state "
                             f"directory (poprules pop enroll)?") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read {self.path / name}: {exc}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path / name}: expected a JSON object")
        return data

    def _private(self, name: str) -> bytes:
        """A secret file, refused when others may read it: a leaked key forges receipts."""
        path = self.path / name
        try:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise StateError(f"{path} is readable by other users; chmod 600 it")
            return path.read_bytes()
        except FileNotFoundError:
            raise StateError(f"{path} is missing") from None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc}") from None


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode("utf-8") + b"\n"
