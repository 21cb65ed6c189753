# dynaseg — `make help` lists the targets. Each target creates .venv and installs on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install train test test-slow test-all lint format clean notebook

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with dev extras (pip install -e ".[dev]")

$(VENV)/.notebook-stamp: $(STAMP)
	$(PY) -m pip install -e ".[dev,notebook]"
	touch $@

train: $(STAMP) ## Quick-start: train + evaluate DMNet on the built-in synthetic scenes (CPU, minutes)
	$(PY) src/train.py experiment=quickstart

notebook: $(VENV)/.notebook-stamp ## Open notebooks/inspect_checkpoint.ipynb in Jupyter (after `make train`)
	$(VENV)/bin/jupyter notebook notebooks/inspect_checkpoint.ipynb

test: $(STAMP) ## Run the fast test suite on every core (CI: .ci/run = make lint + make test)
	$(PY) -m pytest -m "not slow" -n auto --dist worksteal $(PYTEST_ARGS)

test-slow: $(STAMP) ## Run only the heavier tests (DDP spawn, bf16, every table launched, ...)
	$(PY) -m pytest -m slow -n auto --dist worksteal $(PYTEST_ARGS)

test-all: $(STAMP) ## Run every test, on every core
	$(PY) -m pytest -n auto --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: $(STAMP) ## ruff autofix + format
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

clean: ## Remove run outputs (logs/), keep .venv
	rm -rf logs outputs multirun .pytest_cache .ruff_cache
