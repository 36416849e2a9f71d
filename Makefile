# Every target creates or reuses .venv; nothing depends on packages installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv demo test lint bench bench-peers chaos clean

help:
	@echo "make demo   install and run lockgate demo: the examples end to end on the embedded default"
	@echo "make test   install with test extras (and PostgreSQL, Redis, Chromium when root), lint, run the tests"
	@echo "make lint   ruff, import-linter (layers) and mypy"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make bench-peers  lockgate vs Prefect, Dagster, Luigi, Airflow, Hamilton, Ray (~25 min; bench/results/peers.md)"
	@echo "make chaos  the long reliability suite (tests/chaos, LOCKGATE_CHAOS=full) and its table"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	# torch first, pinned: otherwise pip resolves a multi-GB CUDA build for [llm].
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,lint,demo,llm,lineage,server,postgres,redis,s3,ray]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	# The examples as one story in ./lockgate-demo (replaced on each run): nightly eval,
	# index rebuild by data sensor, a canary rollback, then a promotion.
	$(BIN)/lockgate demo --dir lockgate-demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	scripts/test-services.sh
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/messages.py
	$(BIN)/python bench/stats.py
	$(BIN)/python bench/scaleout.py
	$(BIN)/python bench/scale.py

# The same workloads in lockgate and in other orchestrators, each peer in its own
# virtual environment under bench/.venvs/ (made on first use, pinned versions).
# Writes bench/results/peers.md. ARGS="--quick --peers prefect,luigi" while developing.
bench-peers: $(STAMP)
	$(BIN)/python bench/peers/run.py $(ARGS)

# The long version of every fault scenario and fuzz suite in tests/chaos (make test runs
# the short one). Prints the table and keeps it in bench/results/chaos.md. Replay a
# failure with the LOCKGATE_CHAOS_SEED it prints.
chaos: $(STAMP)
	scripts/test-services.sh
	LOCKGATE_CHAOS=full LOCKGATE_CHAOS_REPORT=bench/results/chaos.md \
		$(BIN)/pytest tests/chaos tests/server/test_openapi_schemathesis.py -o timeout=3600

clean:
	rm -rf $(VENV) bench/.venvs .pytest_cache .mypy_cache .ruff_cache examples/*/.lockgate lockgate-demo
