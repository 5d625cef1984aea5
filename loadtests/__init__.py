"""The SRE latency suite (issue 8): locust users, load profiles and SLO verdicts for a PoP and
its control plane. `python -m loadtests.run` (`make loadtest`) is the one command; the design
and the objectives are in docs/loadtests.md."""
