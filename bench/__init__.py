"""The benchmark of issue 4: `python -m bench.quote` (what `make bench` runs); the method and
the results are in docs/performance.md."""
