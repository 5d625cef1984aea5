"""The Cloudflare Worker PoP (docs/cloudflare.md): the same core as the self-hosted PoP, on
Pyodide, with the release uploaded as part of each Worker version.

`worker` holds the host's logic and imports under CPython for tests; `entry` is the Worker
itself (it imports the Workers runtime); `build` writes a deployable Worker directory.
"""
