"""The self-hosted PoP: the portable core (`edge_worker.core.pop`) under CPython.

`state` keeps the PoP's directory (identity, key, pinned keyring, last good release and
redemption snapshot); `sync` pulls and verifies releases and snapshots; `outbox` keeps
receipts durably until `uploader` has handed them to the control plane; `wsgi` serves the core
under granian; `cli` is `poprules pop`. Nothing is imported here, so `poprules` starts fast.
"""
