"""The pages and script a PoP serves to browsers: the checkout component
(`/sdk/poprules.js`, docs/checkout_component.md) and the demo shop (`/demo`).

They are files beside this module, read once per process. The Worker cannot read files, so
its build embeds the same files in a module, `_embedded` (edge_worker/cloudflare/build.py),
which is used when present: one source either way.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT, DEMO = "poprules.js", "demo.html"
TYPES = {SCRIPT: "text/javascript; charset=utf-8", DEMO: "text/html; charset=utf-8"}


@cache
def asset(name: str) -> bytes:
    """The bytes of SCRIPT or DEMO."""
    if name not in TYPES:
        raise KeyError(name)
    try:
        from edge_worker.core.web._embedded import ASSETS  # type: ignore[import-not-found]
    except ImportError:
        return resources.files(__name__).joinpath(name).read_bytes()
    data: bytes = ASSETS[name]
    return data
