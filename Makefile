# One entry point for users and CI. The README's two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# Local Airflow: home in an ignored folder of the repo, SQLite (Airflow's embedded
# default), DAGs from dags/, no example DAGs. Exported to every recipe.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)
# Spark's Python workers must run the venv's interpreter, not python3 from PATH.
export PYSPARK_PYTHON := $(BIN)/python
export PYSPARK_DRIVER_PYTHON := $(BIN)/python
export PATH := $(BIN):$(PATH)

.PHONY: help setup run run-emr emulator airflow test test-fast lint format check lock dataset bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo ""
	@echo "make run / make run-emr take:"
	@grep -E '^#> ' $(MAKEFILE_LIST) | sed 's/^#> /  /'

# Options of `make run` / `make run-emr` (listed by `make help`):
#> DATA=DIR         a Fruits-360-style folder (Training/<Label>/*.jpg); default: a generated sample
#> MODE=full|mini   full (default): every image; mini: a seeded sample (the console says which)
#> MAX_IMAGES=N     mini mode's cap on images (default 200; implies MODE=mini)
#> WEIGHTS=W        imagenet | none | a weights file (default: imagenet if cached or downloadable)
#> PCA_K=K          a fixed number of PCA components (default: 95 % of the variance; make run)
#> OFFLINE=1        never try to download the ImageNet weights
#> FORCE=1          rerun even if nothing changed since the last successful run (make run)
RUN_OPTIONS = $(if $(DATA),--data "$(DATA)") $(if $(WEIGHTS),--weights "$(WEIGHTS)") \
	$(if $(MODE),--mode "$(MODE)") $(if $(MAX_IMAGES),--max-images "$(MAX_IMAGES)") \
	$(if $(OFFLINE),--offline)

setup: $(STAMP) ## create .venv and install the pinned environment (idempotent, seconds when warm)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@command -v java >/dev/null || { echo "Java 17 is required for Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip >/dev/null
	@$(BIN)/uv --version 2>/dev/null | grep -q "$(UV_VERSION)" || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python -r requirements.txt -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

run: setup ## run the pipeline locally through Airflow on the sample dataset, or DATA=DIR (options below)
	$(BIN)/python -m include.local.run $(RUN_OPTIONS) $(if $(PCA_K),--pca-k "$(PCA_K)") $(if $(FORCE),--force)

run-emr: setup ## run the EMR DAG end to end offline against the EMR emulator (options below)
	$(BIN)/python -m emr_emulator.run_pipeline $(RUN_OPTIONS)

emulator: setup ## start the offline AWS + EMR emulator on 127.0.0.1:5000 (PORT= to change)
	$(BIN)/python -m emr_emulator --host 127.0.0.1 --port $(or $(PORT),5000) --data-dir data/emr-emulator --bucket $(or $(FRUITS_BUCKET),fruits-features-bucket)

airflow: setup ## the Airflow UI natively (SQLite, LocalExecutor) + the EMR emulator; Ctrl-C stops all
	$(BIN)/python -m include.local.airflow_stack $(if $(PORT),--port $(PORT))

# Test processes in parallel (pytest-xdist): each has its own Airflow home, SQLite file, Spark
# session and moto (converted models are shared); worksteal evens out the long whole-DAG and
# Spark tests, which tests/ordering.py hands out first. TEST_WORKERS=0 runs in this process
# (for a debugger or -x). test-fast covers every module (tests/test_fast_suite.py checks it).
TEST_WORKERS ?= 3
PYTEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

test: setup lint ## every check: lint, compose validation, the whole test suite (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

test-fast: setup ## tests without the slow and integration ones
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not slow and not integration"

lint: setup ## ruff format + lint (AIR rules), import layers, dependencies (deptry), compose schema, IAM
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yaml
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/include/infra/test_policy_lint.py \
		tests/test_layers.py::test_every_import_is_a_declared_dependency

format: setup ## apply ruff format and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: test ## alias of test

lock: ## re-resolve constraints.txt from the requirements files (needs the package index)
	@command -v uv >/dev/null || $(PYTHON) -m pip install -q "uv==$(UV_VERSION)"
	uv pip compile --python-version 3.11 requirements.txt requirements-dev.txt -o constraints.txt -q --custom-compile-command "make lock"

dataset: setup ## download the real Fruits-360 archive into data/ (needs internet)
	$(BIN)/python -m include.datasets.fetch --dest data

bench: setup ## benchmarks: DAG parse times, featurisation, PCA and separability ratios
	$(BIN)/python benchmarks/parse_times.py
	$(BIN)/python benchmarks/featurize.py
	$(BIN)/python benchmarks/pca.py
	$(BIN)/python benchmarks/separability.py

clean: ## remove the venv, Airflow home and generated data
	rm -rf $(VENV) .airflow .airflow-ui data build .pytest_cache .ruff_cache .import_linter_cache
