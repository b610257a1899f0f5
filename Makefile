# jitgate: `make demo` runs it, `make test` runs every test, `make bench` measures it.
# Everything these need is installed here (apt as root, a Python venv for the AWS peer);
# builds go to a cache outside the clone so CI reuses them.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/jitgate
export JITGATE_CACHE := $(CACHE)
export CARGO_TARGET_DIR ?= $(CACHE)/target
export JITGATE_VENV := $(CACHE)/venv
# Dependency debuginfo is off in Cargo.toml; keep incremental off in CI for a smaller cache.
CARGO ?= cargo

.PHONY: all deps test lint unit-peer build demo bench clean-cache

all: test

## deps: system packages and the AWS peer's venv (idempotent, quiet when done)
deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --bins --tests --quiet

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	@if grep -rn 'crate::store' server/src/http server/src/slack; then \
	  echo "lint: the edges (server/src/http, server/src/slack) reach the store only through the broker (docs/ARCHITECTURE.md)"; \
	  exit 1; fi

## unit-peer: the test peers' own tests (AWS peer: unittest; OIDC peer: node --test)
unit-peer: deps
	@mkdir -p $(CACHE)
	set -o pipefail; $(JITGATE_VENV)/bin/python -m unittest discover -s tests/peers -q 2>&1 | tee $(CACHE)/peer-tests.log
	set -o pipefail; node --test --test-reporter=tap tests/peers/oidc/test.mjs 2>&1 | tee $(CACHE)/oidc-peer-tests.log

## test: lint, the AWS peer's own tests, unit tests, integration tests (SQLite + Postgres)
test: deps lint unit-peer build
	set -o pipefail; $(CARGO) test --workspace --lib --bins --tests --quiet -- --test-threads=4 2>&1 | tee $(CACHE)/cargo-tests.log
	@peer=$$(awk '/^Ran [0-9]+ test/ {n += $$2} END {print n + 0}' $(CACHE)/peer-tests.log); \
	 oidc=$$(awk '/^# pass [0-9]+/ {n += $$3} END {print n + 0}' $(CACHE)/oidc-peer-tests.log); \
	 awk -v peer="$$((peer + oidc))" '/^test result:/ {p += $$4; f += $$6} END {printf "total: %d passed, %d failed\n", p + peer, f}' $(CACHE)/cargo-tests.log

## demo: the AWS peer and the server on SQLite, with a scripted walk-through
demo: deps
	$(CARGO) build --quiet --bin jitgate-server --bin jitgate-demo
	@scripts/demo.sh

## bench: revocation lag, drain rate, sessions ended, the API, jitgate ssh vs the AWS CLI
bench: deps
	@WITH_BENCH_TOOLS=1 scripts/install-deps.sh
	$(CARGO) build --release --quiet --bin jitgate-server --bin jitgate-bench --bin jitgate
	@scripts/bench.sh $(BENCH_ARGS)

clean-cache:
	rm -rf $(CACHE)
