"""The release bundle format (docs/bundle.md): one msgpack document holding the manifest,
the rule module, the host tables and the keyed hashes of coupon codes.

The manifest names every other part by its SHA-256, and the release is named by the SHA-256
of the manifest's canonical encoding, so one hash covers every byte a PoP runs. Encoding is
canonical (fixed key order, no timestamps), so the same program gives the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from poprules.codes import normalize_code

FORMAT = "poprules-bundle/1"
PARTS = ("module", "tables", "coupons")
# What a checkout page shows and no quote needs (catalog titles and prices, rule titles and
# lanes): a part of its own, unpacked only when a page asks (`Bundle.storefront`), so
# loading a release costs the same with it. A bundle without it is still a bundle.
OPTIONAL_PARTS = ("storefront",)


class BundleError(ValueError):
    """A bundle that is not one, or whose parts do not match its manifest."""


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    module: bytes
    tables: dict[str, Any]
    coupons: dict[str, Any]  # {"key": bytes, "codes": {keyed hash hex: coupon set index}}
    storefront_part: bytes | None = None

    @property
    def release_hash(self) -> str:
        return release_hash(self.manifest)

    def storefront(self) -> dict[str, Any]:
        """{"items": [[sku, title, price]], "rules": [[id, title, kind, lane or None]]}, in
        catalog and program order; empty lists for a bundle built without them."""
        if self.storefront_part is None:
            return {"items": [], "rules": []}
        try:
            value: dict[str, Any] = unpack(self.storefront_part)
        except ValueError as exc:
            raise BundleError(f"unreadable storefront: {exc}") from None
        return value


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def release_hash(manifest: dict[str, Any]) -> str:
    return digest(pack(manifest))


def code_hash(key: bytes, code: str) -> str:
    """The keyed hash a release holds instead of a coupon code (spec 6)."""
    return normal_code_hash(key, normalize_code(code))


def normal_code_hash(key: bytes, normal: str) -> str:
    """`code_hash` of a code already normalised (a PoP normalises once per request)."""
    return hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()[:32]


RELEASE_STATEMENT = b"poprules-release/1\n"
_RELEASE_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def release_statement(merchant_id: int, number: int, release_hash: str) -> bytes:
    """The bytes a release signature covers: this merchant's release `number` is the bundle
    of `release_hash`. The number is signed with the hash so a PoP can refuse an older
    release replayed under a higher number; a rollback gets a new number and signature."""
    if not _RELEASE_HASH.fullmatch(release_hash):
        raise ValueError(f"not a release hash (sha256: and 64 hex digits): {release_hash!r}")
    if type(merchant_id) is not int or type(number) is not int or merchant_id < 1 or number < 1:
        raise ValueError("merchant id and release number are whole numbers from 1")
    return RELEASE_STATEMENT + f"{merchant_id}\n{number}\n{release_hash}".encode("ascii")


def encode(manifest: dict[str, Any], module: bytes, tables: dict[str, Any],
           coupons: dict[str, Any], storefront: dict[str, Any] | None = None) -> bytes:
    """The bundle's bytes; the manifest gains the digests of the parts."""
    parts = {"module": module, "tables": pack(tables), "coupons": pack(coupons)}
    if storefront is not None:
        parts["storefront"] = pack(storefront)
    manifest = {**manifest, "format": FORMAT, "parts": {k: digest(v) for k, v in parts.items()}}
    return pack({"manifest": manifest, **parts})


def decode(data: bytes) -> Bundle:
    """Read a bundle and check every part against the manifest."""
    try:
        document = unpack(data)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise BundleError(f"not a poprules bundle: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("manifest"), dict):
        raise BundleError("not a poprules bundle: no manifest")
    manifest = document["manifest"]
    if manifest.get("format") != FORMAT:
        raise BundleError(f"unsupported bundle format {manifest.get('format')!r}; "
                          f"this host reads {FORMAT}")
    digests = manifest.get("parts")
    if not isinstance(digests, dict):
        raise BundleError("the manifest lists no parts")
    for part in PARTS:
        blob = document.get(part)
        if not isinstance(blob, bytes) or digests.get(part) != digest(blob):
            raise BundleError(f"the bundle's {part} does not match its manifest")
    for part in OPTIONAL_PARTS:
        if part in digests or part in document:
            blob = document.get(part)
            if not isinstance(blob, bytes) or digests.get(part) != digest(blob):
                raise BundleError(f"the bundle's {part} does not match its manifest")
    try:
        tables, coupons = unpack(document["tables"]), unpack(document["coupons"])
    except ValueError as exc:
        raise BundleError(f"unreadable bundle tables: {exc}") from None
    return Bundle(manifest, document["module"], tables, coupons, document.get("storefront"))
