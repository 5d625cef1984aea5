"""Runs Python under real Pyodide in Node, the Cloudflare Worker's runtime (issue 7).

`harness.run_pyodide` starts `run.mjs` on the toolchain of scripts/edge_toolchain.sh; the
`pyodide` fixture of conftest.py hands it to a test, and fails (never skips) when the toolchain
is missing. See run.mjs for what the Pyodide side sees.
"""
