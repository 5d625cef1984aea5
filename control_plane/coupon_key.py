"""The key of a merchant's coupon code hashes (spec section 6: a release never holds a code in
clear, only a keyed hash of it).

One control-plane secret, `coupons.secret` in the key directory (0600, made on first use),
and per merchant a key derived from it: releases and generated codes of one merchant hash
alike, two merchants' hashes of the same code differ, and rotating the signing key never
changes a code's hash (which would orphan every code already handed out). The derived key
travels in the merchant's bundles, since a PoP must hash the codes shoppers type.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

SECRET_FILE = "coupons.secret"


def coupon_key(key_dir: Path, merchant_id: int) -> bytes:
    return hmac.new(_secret(key_dir), f"poprules-coupons/1\n{merchant_id}".encode(),
                    hashlib.sha256).digest()


def customer_key(key_dir: Path, merchant_id: int) -> bytes:
    """The key of a merchant's customer hashes (customer tokens' `sub` and `ref`, wallets):
    derived from the same secret under another label, so it never equals the coupon key that
    bundles carry. It never leaves the control plane: without it, a shop's id of a shopper
    cannot be confirmed by hashing guesses (a token's payload is readable by its holder)."""
    return hmac.new(_secret(key_dir), f"poprules-customers/1\n{merchant_id}".encode(),
                    hashlib.sha256).digest()


def customer_hash(key: bytes, opaque_id: str) -> str:
    """How the control plane knows a shopper: HMAC-SHA256 of the shop's id under
    `customer_key`, 64 lowercase hex digits."""
    return hmac.new(key, opaque_id.encode("utf-8"), hashlib.sha256).hexdigest()


def session_key(key_dir: Path) -> str:
    """The console's cookie-signing key (Flask's SECRET_KEY), derived from the same secret
    under its own label: every worker and host of the control plane shares it already, and
    it outlives a signing-key rotation (docs/console.md)."""
    return hmac.new(_secret(key_dir), b"poprules-console-session/1", hashlib.sha256).hexdigest()


def _secret(key_dir: Path) -> bytes:
    path = key_dir / SECRET_FILE
    if not path.exists():
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(key_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                # Written aside and renamed into place: a reader that does not take the lock
                # (it found the file) must never read it half-written, or empty, and hash
                # with the wrong key.
                fd, temp = tempfile.mkstemp(dir=key_dir, prefix=f".{SECRET_FILE}.")  # 0600
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(secrets.token_hex(32) + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
    text = path.read_text(encoding="ascii").strip()
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by other users; chmod 600 it")
    return bytes.fromhex(text)
