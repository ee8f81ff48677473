# rtbcore — `make help` lists the targets. Everything installs into ./.venv from this repo's files.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
CARGO  ?= cargo
BUILD_DEPS := "maturin>=1.7,<2" "Cython>=3.0,<4" "numpy>=1.26,<3" "setuptools>=68" wheel

.DEFAULT_GOAL := help
.PHONY: help install system-deps tools bench-tools demo test test-rust test-loom test-py sdk-deps test-sdk test-sdk-js test-sdk-go bench bench-exchange bench-client bench-openrtb bench-rust loadgen lint clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(BUILD_DEPS)
	touch $@

# redis-server (Debian's package, with redis-cli) for rtbcore.distributed's tests; installed only
# when missing, so a machine that has it is left alone.
system-deps:  ## install the system packages the tests need (redis-server), only when missing
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q redis-server; }

install: system-deps $(VENV)/.created tools  ## build the Rust core (maturin) and the Cython module, install both into .venv
	$(PIP) install -q --no-build-isolation ./rust/py ".[test]"
	$(PIP) install -q --no-build-isolation --no-deps --force-reinstall ./rust/py .

# websocat: the third-party JSON client of the exchange conformance tests (~1-2 min to build
# once; skipped when already on PATH or in ~/.cargo/bin)
tools:  ## third-party tools the tests use: websocat (cargo install, only when missing)
	@command -v websocat >/dev/null || test -x $(HOME)/.cargo/bin/websocat || \
	    $(CARGO) install --locked websocat

# oha: the third-party HTTP load generator of the OpenRTB benches (benches/bench_openrtb.py),
# chosen over Debian's wrk because it has an open-loop fixed rate (-q, with coordinated-omission
# correction) and a JSON report; pinned. Built once (it bundles a TLS stack, jemalloc and
# SQLite: up to half an hour on a busy 2-core machine); skipped when already on PATH or in
# ~/.cargo/bin
OHA_VERSION := 1.16.0

bench-tools:  ## third-party tools the benches use: oha (cargo install, only when missing)
	@command -v oha >/dev/null || test -x $(HOME)/.cargo/bin/oha || \
	    $(CARGO) install --locked oha@$(OHA_VERSION)

loadgen:  ## build rtbcore-loadgen, the exchange load generator, and rtbcore-mock-bidders (rust/loadgen)
	$(CARGO) build --release --manifest-path rust/Cargo.toml -p rtbcore-loadgen

demo: install  ## set up and run the main job: rtbcore demo
	$(BIN)/rtbcore demo

test: install loadgen test-rust test-loom test-py test-sdk  ## set up and run the whole test suite (cargo test, loom, pytest, the JS and Go SDKs)

# bounded (compilation included): a hung test fails the run instead of keeping CI waiting
test-rust:  ## cargo tests of the core, the protocol, the exchange server and the load generator crates
	timeout -k 10 2400 $(CARGO) test --release --manifest-path rust/Cargo.toml -p rtbcore-core -p rtbcore-proto -p rtbcore-gateway -p rtbcore-loadgen

# The models run in ~2 s; the loom cfg rebuilds the crate and its dev-dependencies in their own
# target dir (~3 min from cold on the 2-core CI box), which CI pays so the queue stays modelled.
test-loom:  ## loom model of the lock-free bid queue (RUSTFLAGS=--cfg rtbcore_loom)
	RUSTFLAGS="--cfg rtbcore_loom" CARGO_TARGET_DIR=rust/target/loom \
	    $(CARGO) test --release --manifest-path rust/Cargo.toml -p rtbcore-core --test queue_loom

# The JS and Go SDKs (sdk/): Node's test runner and `go test -race`, both against the real
# `rtbcore serve` (RTBCORE_BIN). Go builds offline from Debian's packaged libraries in GOPATH mode
# (/usr/share/gocode), so no module proxy is needed; the checkout is linked into a GOPATH under out/.
SDK_DEBS    := nodejs golang-go golang-github-gorilla-websocket-dev golang-google-protobuf-dev protobuf-compiler protoc-gen-go chromium
RTBCORE_BIN ?= $(CURDIR)/$(BIN)/rtbcore
SDK_GOPATH  := $(CURDIR)/out/gopath
SDK_GOPKG   := $(SDK_GOPATH)/src/github.com/rtbcore/rtbcore/sdk/go

sdk-deps:  ## Debian packages the SDK tests need (Node, Go, protoc, Chromium), only when missing
	@missing=$$(for p in $(SDK_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; fi

test-sdk: sdk-deps test-sdk-js test-sdk-go  ## the JS and Go SDK tests against rtbcore serve (needs make install)

# bounded: a test that left a child running would otherwise keep the runner waiting
test-sdk-js:
	cd sdk/js && RTBCORE_BIN=$(RTBCORE_BIN) timeout -k 10 900 node --experimental-websocket --test test/*.test.mjs

test-sdk-go:
	mkdir -p $(dir $(SDK_GOPKG)) && ln -sfn $(CURDIR)/sdk/go $(SDK_GOPKG)
	cd $(SDK_GOPKG) && RTBCORE_BIN=$(RTBCORE_BIN) GO111MODULE=off GOPATH=$(SDK_GOPATH):/usr/share/gocode \
	    go test -race -count=1 ./...

# tests/test_sdk_conformance.py runs the same scenario in the Python, JS and Go SDKs: it needs
# Node and Go (sdk-deps) besides the installed package.
test-py: sdk-deps  ## the Python test suite, with the SDKs' shared conformance scenario (needs make install)
	$(BIN)/pytest

bench: install loadgen bench-tools  ## benchmarks of rtbcore vs its baselines: prints the table, writes docs/benchmarks.md
	mkdir -p out
	$(BIN)/pytest benches/bench_*.py --benchmark-enable --benchmark-only \
	    --benchmark-json=out/bench.json --benchmark-columns=median,ops,rounds -p no:randomly
	$(BIN)/python benches/table.py out/bench.json --write docs/benchmarks.md

bench-exchange: install loadgen  ## only the exchange benches (rtbcore serve vs the Python peer): printed, and their rows updated in docs/benchmarks.md
	mkdir -p out
	$(BIN)/pytest benches/bench_exchange.py --benchmark-enable --benchmark-only -s \
	    --benchmark-json=out/bench-exchange.json --benchmark-columns=median,ops,rounds -p no:randomly
	$(BIN)/python benches/table.py out/bench-exchange.json --update docs/benchmarks.md

bench-client: install  ## only the Python SDK benches (rtbcore.client vs a naive websockets+protobuf loop): printed, and their rows updated in docs/benchmarks.md
	mkdir -p out
	$(BIN)/pytest benches/bench_client.py --benchmark-enable --benchmark-only -s \
	    --benchmark-json=out/bench-client.json --benchmark-columns=median,ops,rounds -p no:randomly
	$(BIN)/python benches/table.py out/bench-client.json --update docs/benchmarks.md

bench-rust:  ## criterion benches of the core crate and of the OpenRTB door's JSON
	$(CARGO) bench --manifest-path rust/Cargo.toml -p rtbcore-core
	$(CARGO) bench --manifest-path rust/Cargo.toml -p rtbcore-gateway --bench openrtb_json

bench-openrtb: install loadgen bench-tools  ## only the OpenRTB benches (rtbcore serve vs the aiohttp peer, mock HTTP bidders, oha): printed, and their rows updated in docs/benchmarks.md
	mkdir -p out
	$(BIN)/pytest benches/bench_openrtb.py --benchmark-enable --benchmark-only -s \
	    --benchmark-json=out/bench-openrtb.json --benchmark-columns=median,ops,rounds -p no:randomly
	$(BIN)/python benches/table.py out/bench-openrtb.json --update docs/benchmarks.md

lint:  ## rustfmt, clippy, ruff, mypy stubtest
	$(CARGO) fmt --manifest-path rust/Cargo.toml --all -- --check
	$(CARGO) clippy --manifest-path rust/Cargo.toml --all-targets -- -D warnings
	$(BIN)/ruff check rtbcore tests benches
	@# run from inside .venv so that the source tree does not shadow the installed package
	cd $(VENV) && bin/python -m mypy.stubtest --mypy-config-file ../pyproject.toml _rtbcore rtbcore._fastpath rtbcore._floors rtbcore._adjust

clean:  ## remove build outputs and the virtualenv
	rm -rf $(VENV) build out rust/target src/_fastpath.c *.egg-info
