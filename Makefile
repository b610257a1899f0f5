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

unit-peer: deps
	$(JITGATE_VENV)/bin/python -m unittest discover -s tests/peers -q

## test: lint, the AWS peer's own tests, unit tests, integration tests (SQLite + Postgres)
test: deps lint unit-peer build
	$(CARGO) test --workspace --quiet -- --test-threads=4

## demo: the AWS peer and the server on SQLite, with a scripted walk-through
demo: deps
	$(CARGO) build --quiet --bin jitgate-server --bin jitgate-demo
	@scripts/demo.sh

## bench: revocation lag and drain rate against the quota-limited peer
bench: deps
	$(CARGO) build --release --quiet --bin jitgate-server --bin jitgate-bench
	@scripts/bench.sh $(BENCH_ARGS)

clean-cache:
	rm -rf $(CACHE)
