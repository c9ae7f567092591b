# searchrel — `make demo` runs the whole loop on the bundled sample; `make test` runs the suite.
# Both set themselves up (a virtualenv in .venv with the CPU build of torch).

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_CPU := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup demo test lint format compile manifests generated clean

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_CPU)
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip check
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install searchrel with its dev tools

demo: $(STAMP) ## the whole loop on the bundled sample (summary: runs/demo/summary.json)
	$(BIN)/searchrel demo --out runs/demo --config configs/local.yaml

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src/searchrel

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## lint, then the test suite (starts the servers it needs itself)
	$(BIN)/pytest

compile: $(STAMP) ## compile every KFP pipeline to src/searchrel/pipelines/compiled/ with configs/cluster.yaml's label section (committed; CI checks it is fresh)
	$(BIN)/searchrel pipelines compile

manifests: $(STAMP) ## render manifests/base/prometheusrule.yaml from monitoring/prometheus/rules.yml
	$(BIN)/python -m searchrel.prometheus_rule

generated: compile manifests ## regenerate every committed generated file, then fail if any changed
	git diff --exit-code -- src/searchrel/pipelines/compiled manifests/base/prometheusrule.yaml

clean: ## remove run outputs (keeps .venv)
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
