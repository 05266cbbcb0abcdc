# STROM developer entry points. `make` (or `make help`) lists them.
# Every target is a thin wrapper: the real work lives in cargo and scripts/, so CI and people run the same commands.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo

# The services the test suite talks to; scripts/ensure-services.sh checks (and if needed starts) exactly these.
STROM_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
STROM_TEST_NATS_URL ?= nats://127.0.0.1:4222
export STROM_TEST_DATABASE_URL STROM_TEST_NATS_URL

.PHONY: help build ui run test ui-test ui-e2e lint format bench migrate demo-m0 demo-m1 demo-m2 up down

help: ## List the targets (default)
	@echo "STROM make targets:"
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z0-9_-]+):.*## (.*)$$/\1\t\2/' \
		| awk -F '\t' '{ printf "  %-10s %s\n", $$1, $$2 }'

build: ## Build the workspace (debug) including the strom binary
	$(CARGO) build --workspace

ui: ## Build the dashboard into ui/dist when needed (npm ci if ui/node_modules is missing or stale, npm run build if ui/dist is); needs Node.js 20.19+ with npm
	scripts/ui.sh build

run: ui ## Build the dashboard (make ui) and strom (release), then start `strom serve` with the simulator and a demo agent (embedded unless STROM_* say otherwise); open http://127.0.0.1:8080/
	$(CARGO) run --release -p strom --bin strom -- serve --demo-agent

test: ## Check/install the tools the tests run (scripts/ensure-tools.sh) and Postgres/NATS (scripts/ensure-services.sh), run the dashboard's tests and build (make ui-test), every test of the workspace, then the browser tests (make ui-e2e) with the debug strom those built
	scripts/ensure-tools.sh
	scripts/ensure-services.sh
	scripts/ui.sh test
	$(CARGO) test --workspace --all-targets
	scripts/ui.sh e2e

ui-test: ## The dashboard's tests: npm ci if needed, Vitest (with the schema.d.ts staleness check), then the build
	scripts/ui.sh test

ui-e2e: ## The dashboard's browser tests: a real strom serve (STROM_BIN, default CARGO_TARGET_DIR or target, then /debug/strom) driven in Chromium (/usr/bin/chromium) by playwright-core; screenshots in target/e2e-screenshots/
	scripts/ui.sh e2e

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

format: ## Format all Rust code (cargo fmt)
	$(CARGO) fmt --all

bench: ## Print benchmark figures, also to target/bench/results.json: append vs pgbench at 1/8/32 writers; RecordRun latency p50/p99 at 10 vs 100,000 prior events (Postgres, memory); over 1M Agent events: scan, log read, projection rebuild (Postgres, memory), relay; paper trading: tick-to-fill p50/p99 with 1,000 agents at 1 s, fills/s sustained; backtest reference workload (1M CSV bars): bars/s, CSV load, peak memory, and 10M simulated bars (~7 min; STROM_BENCH_QUICK=1: ~1 min smoke run)
	scripts/ensure-services.sh
	$(CARGO) bench -p strom --bench bench

migrate: ## Apply the database migrations to STROM_DATABASE_URL (strom migrate)
	@if [[ -z "$${STROM_DATABASE_URL:-}" ]]; then \
		echo "migrate: set STROM_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/strom)" >&2; exit 1; fi
	$(CARGO) run -p strom --bin strom -- migrate

demo-m0: ## M0 demo: health, readiness, metrics, auth (token, 401), correlation id in logs, clean shutdown
	scripts/demo-m0.sh

demo-m1: ## M1 demo: create an agent, start it, watch its runs on the simulated market (seed 42), stop it
	scripts/demo-m1.sh

demo-m2: ## M2 demo: an agent paper-trades on the simulated market (seed 42): orders with a risk rejection, trades, position, PnL identity, replay --verify with a database
	scripts/demo-m2.sh

up: ## Start the full stack with Docker (docker compose up -d --build); needs a Docker engine
	scripts/compose.sh up -d --build

down: ## Stop the full stack (docker compose down)
	scripts/compose.sh down
