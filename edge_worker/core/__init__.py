"""The portable edge core: bundle → request words → rule module → quote.

Everything here must import under Pyodide as well as CPython: no wasmtime, no Flask, no threads
at import time. The wasm engine is an adapter the host passes in (`engine.Engine`).
"""
