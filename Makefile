# Every target creates or reuses .venv; nothing depends on packages installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv demo test lint bench clean

help:
	@echo "make demo   install and run the example ML pipeline on the embedded default"
	@echo "make test   install with test extras (and PostgreSQL, Redis, Chromium when root), lint, run the tests"
	@echo "make lint   ruff, import-linter (layers) and mypy"
	@echo "make bench  run the benchmarks in bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	# torch first, pinned: otherwise pip resolves a multi-GB CUDA build for [llm].
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,lint,demo,llm,lineage,server,postgres,redis,s3,ray]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	# The demo's own state dir: migrate it if an older lockgate created it.
	cd examples/quickstart && ../../$(BIN)/lockgate db upgrade
	cd examples/quickstart && ../../$(BIN)/lockgate run pipelines.py:nightly
	cd examples/quickstart && ../../$(BIN)/lockgate models list breast-cancer-clf
	cd examples/quickstart && ../../$(BIN)/lockgate record latest -o .lockgate/records/latest.md
	cd examples/quickstart && ../../$(BIN)/lockgate stats --since 1d
	@echo "Next: cd examples/quickstart; ../../$(BIN)/lockgate show latest; ../../$(BIN)/lockgate lineage model:breast-cancer-clf; ../../$(BIN)/lockgate server (web UI on http://127.0.0.1:8787/)"

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache examples/*/.lockgate
