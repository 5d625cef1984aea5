"""A PoP's copy of the control plane's redemption state (spec section 6, docs/redemptions.md):
which generated codes exist and which codes are spent, read from the signed snapshot it
pulls, for one release.

The host verifies the snapshot's signature before this reads it (the keyring is the host's,
as for releases) and keeps the highest version it has verified: a lower one is a replay.
Reading a snapshot binds it to a release, because the bundle numbers coupon sets by their
place in the program; after a hot swap the host reads the same bytes again for the new
release. Standard library only, so it imports under Pyodide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from poprules import canonical
from poprules.bundle import normal_code_hash

if TYPE_CHECKING:
    from edge_worker.core.release import Release

FORMAT = "poprules-redemptions/1"
_KEYS = frozenset({"format", "merchant", "version", "program", "issued", "spent", "spent_sets",
                   "spent_by_customer"})


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this release can use; the host keeps what it had."""


@dataclass(frozen=True)
class Redemptions:
    merchant: int
    version: int
    program: str
    release_hash: str  # the release this copy was read for
    _key: bytes
    _literal: dict[str, int]  # the release's own codes: keyed hash -> set index
    _issued: dict[str, int]  # generated codes of sets the release has: keyed hash -> set index
    _spent: frozenset[str]
    _spent_sets: frozenset[int]
    _spent_by_customer: dict[str, frozenset[int]]

    @classmethod
    def from_snapshot(cls, body: bytes, *, release: Release,
                      merchant: int | None = None) -> Redemptions:
        """Read a verified snapshot for `release` (and, when given, `merchant`). Sets the
        release does not have are left out: their codes are unknown here, as in a
        simulation of this release."""
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SnapshotError(f"not a redemption snapshot: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SnapshotError(f"not a {FORMAT} document")
        if set(document) != _KEYS:
            raise SnapshotError(f"a snapshot has exactly the keys {', '.join(sorted(_KEYS))}")
        # One state, one encoding: the digest the control plane publishes names these bytes.
        if canonical.encode(document) != body:
            raise SnapshotError("the snapshot is not in canonical form")
        number, version = document["merchant"], document["version"]
        if not (_is_count(number) and _is_count(version)):
            raise SnapshotError("merchant and version are whole numbers from 1")
        if merchant is not None and number != merchant:
            raise SnapshotError(f"the snapshot is merchant {number}'s, not {merchant}'s")
        if document["program"] != release.program:
            raise SnapshotError(f"the snapshot is for program {document['program']!r}; this "
                                f"release runs {release.program!r}")
        sets = {set_id: index
                for index, set_id in enumerate(release.bundle.tables["coupon_sets"])}
        issued = _mapping(document["issued"], "issued")
        by_customer = _mapping(document["spent_by_customer"], "spent_by_customer")
        return cls(
            merchant=number, version=version, program=release.program,
            release_hash=release.hash, _key=release.bundle.coupons["key"],
            _literal=release.bundle.coupons["codes"],
            _issued={code: sets[set_id] for set_id, codes in issued.items() if set_id in sets
                     for code in codes},
            _spent=frozenset(_texts(document["spent"], "spent")),
            _spent_sets=_indices(_texts(document["spent_sets"], "spent_sets"), sets),
            _spent_by_customer={customer: _indices(ids, sets)
                                for customer, ids in by_customer.items()},
        )

    def coupon_set(self, normal: str) -> int:
        """The set index of a generated code (normalised), or -1; the release answers for
        its own literal codes."""
        return self._issued.get(normal_code_hash(self._key, normal), -1)

    def spent(self, normal: str, customer_hash: str | None = None) -> bool:
        """Whether a known code is spent: listed, in a set whose max_redemptions is reached,
        or (for this customer's token subject hash) in a set at its per_customer."""
        digest = normal_code_hash(self._key, normal)
        if digest in self._spent:
            return True
        index = self._literal.get(digest, self._issued.get(digest, -1))
        if index < 0:
            return False
        if index in self._spent_sets:
            return True
        return customer_hash is not None and index in self._spent_by_customer.get(
            customer_hash, frozenset())


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 1


def _texts(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SnapshotError(f"{field} must be a list of strings")
    return value


def _mapping(value: Any, field: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise SnapshotError(f"{field} must be an object")
    return {key: _texts(items, f"{field}.{key}") for key, items in value.items()}


def _indices(set_ids: list[str], sets: dict[str, int]) -> frozenset[int]:
    return frozenset(sets[s] for s in set_ids if s in sets)
