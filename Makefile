# FlashMM — the two commands: `make demo` and `make test` (plus `make bench`).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench backtest clean venv deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m flashmm.venue.sei.protos >/dev/null
	touch $(STAMP)

deps:
	@scripts/system-deps.sh

demo: $(STAMP) deps
	$(BIN)/flashmm demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy flashmm hotpath workflows activities workers api

# starts PostgreSQL/Redis/VictoriaMetrics on loopback if they are not running, and stops
# afterwards the ones it started
unit: $(STAMP) deps
	@before=$$($(BIN)/flashmm services status); \
	$(BIN)/flashmm services up >/dev/null || exit 1; \
	$(BIN)/pytest -n auto -q; rc=$$?; \
	if [ "$$before" = '{"postgres": false, "redis": false, "victoria-metrics": false}' ]; then \
	  $(BIN)/flashmm services down >/dev/null; fi; \
	exit $$rc

test: lint typecheck unit

bench: $(STAMP) deps
	$(BIN)/python -m bench.run --out bench/results.json

backtest: $(STAMP)
	$(BIN)/flashmm backtest --minutes 10 --seed 7

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis reports bench/results.json
