"""Edge PoP: a portable core and thin hosts (CPython + wasmtime, Cloudflare on Pyodide)."""
