# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv/ and installs what it needs on first use; nothing to set up by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EDGE   := .edge/.installed
BROWSER := .edge/.browser
DEMO   := examples/corner-market
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint bench sweep loadtest clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,loadtest]'
	@touch $(STAMP)

## The Cloudflare Worker's toolchain (Pyodide, wrangler, the vendored wheels) under .edge/,
## so that the tests that run the Worker in Node-Pyodide download nothing themselves.
$(EDGE): scripts/edge_toolchain.sh $(STAMP)
	bash scripts/edge_toolchain.sh

## The browser tests' headless Chromium: Debian's package, installed when missing.
$(BROWSER): scripts/browser.sh
	bash scripts/browser.sh

## The main job: check the demo program and explain its example request, then the whole
## loop with real processes (scripts/demo.py): a control plane and a self-hosted PoP, the
## program published, quotes, checkouts and a refund, receipts booked, the shopper's wallet.
demo: $(STAMP)
	$(BIN)/poprules check $(DEMO)/rules.yaml $(DEMO)/catalog.json
	$(BIN)/poprules explain $(DEMO)/rules.yaml $(DEMO)/catalog.json $(DEMO)/request.json
	$(BIN)/python scripts/demo.py $(if $(KEEP),--keep)

## The whole suite, slow tests included (what CI runs).
test: $(STAMP) $(EDGE) $(BROWSER)
	$(BIN)/pytest -n auto $(PYTEST_ARGS)

## The suite without the slow corpora and fuzzers, for a quick local loop.
test-fast: $(STAMP) $(EDGE) $(BROWSER)
	$(BIN)/pytest -n auto -m 'not slow' $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check poprules wasm_build edge_worker control_plane loadtests tests bench scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

## The benchmark of issue 4: the compiled module against the reference evaluator and
## datalogic-py on the same carts, plus build and load times (docs/performance.md).
bench: $(STAMP) $(EDGE)
	$(BIN)/python -m bench.quote

## Issue 8's rate sweep: p50/p99 of a local PoP's POST /v1/quote against the offered rate
## (open loop), drawn to docs/img/pop-rate-sweep.png (docs/performance.md).
sweep: $(STAMP) $(EDGE)
	$(BIN)/python -m bench.sweep

## Issue 8's SRE latency suite (docs/loadtests.md): a control plane and a PoP started on
## loopback, a 100-rule program published, locust headless, the SLO verdict table; exits
## non-zero when an objective is missed. PROFILE=steady|soak|spike|smoke; LOADTEST_ARGS for
## more (--rate, --duration, --processes); POPRULES_LOADTEST_POP/_CP/_TOKEN for other hosts.
PROFILE ?= steady
LOADTEST_ARGS ?=
loadtest: $(STAMP)
	$(BIN)/python -m loadtests.run --profile $(PROFILE) $(LOADTEST_ARGS)
