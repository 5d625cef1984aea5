"""poprules: merchants' cashback, coupon and pricing rules, evaluated exactly to the cent.

The API is imported lazily so the contract modules of this package (errors, request,
literals, ...) stay light enough for the edge worker under Pyodide.
"""

from __future__ import annotations

from typing import Any

from poprules.errors import InputError

__all__ = ["InputError", "load", "quote", "read_request"]


def __getattr__(name: str) -> Any:
    if name in ("load", "quote", "read_request"):
        from poprules import api

        return getattr(api, name)
    raise AttributeError(name)
