"""Build a release bundle from a checked program: plan → emit → tables → bundle bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from poprules import bundle as fmt
from wasm_build import abi
from wasm_build.emit import emit
from wasm_build.lang.model import Cashback, Program
from wasm_build.plan import plan


def coupon_key(program: Program) -> bytes:
    """The default key of the coupon code hashes: fixed by the program's name, so builds are
    reproducible. The control plane passes its own secret key instead."""
    return hashlib.sha256(b"poprules coupon codes\0" + program.name.encode()).digest()


def build(program: Program, *, key: bytes | None = None,
          customer_keys: Sequence[tuple[str, str]] = ()) -> bytes:
    """The bundle of a program: the same program, key and customer keys give the same bytes.

    `customer_keys` are the (key id, hex public key) pairs a PoP verifies customer tokens
    with (docs/customer_tokens.md); the control plane passes its keyring, a local build none.
    """
    planned = plan(program)
    key = coupon_key(program) if key is None else key
    codes = {
        fmt.code_hash(key, code): index
        for index, coupon_set in enumerate(program.coupons)
        for code in sorted(coupon_set.codes)
    }
    manifest = {
        "program": program.name,
        "currency": program.currency,
        "timezone": program.timezone,
        "abi": abi.ABI_VERSION,
        "rules": len(program.rules),
        "items": len(program.catalog.items),
    }
    if customer_keys:
        manifest["customer_keys"] = [{"key_id": key_id, "public_key": public}
                                     for key_id, public in sorted(customer_keys)]
    return fmt.encode(manifest, emit(planned.words), planned.tables,
                      {"key": key, "codes": dict(sorted(codes.items()))}, storefront(program))


def storefront(program: Program) -> dict[str, Any]:
    """What a checkout page shows beside the quote (poprules.bundle.OPTIONAL_PARTS)."""
    return {
        "items": [[item.sku, item.title, item.price] for item in program.catalog.items],
        "rules": [[rule.id, rule.title, rule.reward.key,
                   rule.reward.lane.value if isinstance(rule.reward, Cashback) else None]
                  for rule in program.rules],
    }
