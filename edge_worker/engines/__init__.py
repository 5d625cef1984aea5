"""Host-specific adapters for `edge_worker.core.engine.Engine`.

Kept outside the core because each imports a runtime that exists on one host only
(`wasmtime_engine`: the wasmtime package under CPython).
"""
