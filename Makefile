# pretrade-guard developer tasks. `make help` lists them.
#
# Every target calls tools by their .venv/bin path (no activation needed) and
# the virtualenv is (re)built only when pyproject.toml or a lock file changes.
# Needs only python3 >= 3.11 and make; override the interpreter with
#   make PYTHON=python3.11 check

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Touched after a successful install; newer inputs trigger a re-install.
# RUN_STAMP: the runtime dependencies only (requirements/runtime.lock), all `make run` needs.
# STAMP: the dev toolchain on top (requirements/dev.lock, a superset), what the checks need.
RUN_STAMP := $(VENV)/.runtime.stamp
STAMP := $(VENV)/.installed.stamp
PIP_INSTALL = $(BIN)/python -m pip install --disable-pip-version-check --no-input
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-m "not integration" -x'
PYTEST_ARGS ?=
# uv is used only to regenerate the lock files (make lock); pinned for stable output.
UV_VERSION ?= 0.13.9
# Extra `uv pip compile` flags, e.g. make lock LOCK_FLAGS=--upgrade
LOCK_FLAGS ?=
IMAGE ?= pretrade-guard:local
# e.g. make bench BENCH_ARGS='--duration 5 --accounts 50'; make soak SOAK_ARGS='--duration 180 --rate 300'
BENCH_ARGS ?=
SOAK_ARGS ?= --duration 180 --rate 300
# Debian's `prometheus` package ships it (make system-packages installs it).
PROMTOOL ?= promtool
# Debian packages the checks need, as COMMAND:PACKAGE (installed when COMMAND is missing).
# `make check` and .ci/run install them the same way: scripts/ensure-apt-packages.sh.
#   promtool: alert rules (alerts-check, tests/deploy)   wrk: benchmark smoke test
#   docker, dockerd, debootstrap: the image test (tests/integration/test_image.py)
#   redis-server: fleet-mode tests   curl: the run-fleet test runs its printed curl example
SYSTEM_PACKAGES ?= promtool:prometheus wrk docker:docker.io dockerd:docker.io debootstrap \
	redis-server curl

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# A task runner, not a build graph: run prerequisites one by one, in the
# order written, so `check` fails fast at the first broken step.
.NOTPARALLEL:
.DELETE_ON_ERROR:

.PHONY: help venv run-venv system-packages run run-fleet check lint fmt typecheck test openapi openapi-check \
	container-lint alerts-check lock image image-test up down clean distclean bench soak

help: ## Show this help
	@echo "Usage: make TARGET [PYTHON=python3.11] [PYTEST_ARGS=...]"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-15s %s\n", $$1, $$2}'

# --- environment ----------------------------------------------------------------

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "error: '$(PYTHON)' must be Python >= 3.11 (try: make PYTHON=python3.11 ...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# The demo runs `python -m app` and `python -m simulator` from this directory, so the project
# itself is not installed here (that would build it in an isolated env: seconds more); the
# guard then reports version 0.0.0+source. `make venv` installs it (editable).
$(RUN_STAMP): $(BIN)/python requirements/runtime.lock
	@echo "--- first run: installing the guard's runtime dependencies (about 30 packages," \
		"requirements/runtime.lock) into $(VENV), once: seconds on a quiet machine, up to" \
		"two minutes on a small busy one. make check adds the dev tools later."
	$(PIP_INSTALL) -r requirements/runtime.lock
	@touch $@

# dev.lock pins every runtime.lock package at the same version (tests/unit/test_locks.py), so
# a dev install is a runtime install too.
$(STAMP): $(BIN)/python pyproject.toml requirements/dev.lock requirements/runtime.lock \
		clients/python/pyproject.toml
	$(PIP_INSTALL) -r requirements/dev.lock
	$(PIP_INSTALL) --no-deps -e .
	# The bot client (its own distribution; its only dependency, httpx, is in the lock).
	$(PIP_INSTALL) --no-deps -e ./clients/python
	@touch $(RUN_STAMP) $@

venv: $(STAMP) ## Create/refresh .venv with the dev toolchain (when pyproject.toml or a lock changed)

run-venv: $(RUN_STAMP) ## Create/refresh .venv with the runtime dependencies only (what make run needs)

system-packages: ## Install the Debian packages the checks need, or say which (SYSTEM_PACKAGES)
	@scripts/ensure-apt-packages.sh $(SYSTEM_PACKAGES)

# --- run --------------------------------------------------------------------------

run: $(RUN_STAMP) ## Run the demo: simulator + guard on loopback, prints curl examples (Ctrl-C stops)
	$(BIN)/python scripts/run_demo.py

run-fleet: $(RUN_STAMP) ## Fleet demo: redis-server (PATH) + simulator + refresher + 2 api replicas, prints curls
	$(BIN)/python -m scripts.run_fleet

# --- checks -------------------------------------------------------------------------

check: system-packages venv lint typecheck test openapi-check container-lint alerts-check ## Run every check (what .ci/run runs), failing fast

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## Auto-fix lint findings and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP) ## mypy --strict over the packages listed in pyproject.toml
	$(BIN)/mypy

test: $(STAMP) ## pytest with branch coverage (PYTEST_ARGS=... to narrow)
	$(BIN)/pytest --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)

openapi: $(STAMP) ## Regenerate openapi/openapi.json from the app
	$(BIN)/python -m app.openapi_spec write

openapi-check: $(STAMP) ## Fail if openapi/openapi.json differs from the app
	$(BIN)/python -m app.openapi_spec check

container-lint: $(STAMP) ## hadolint the Dockerfile, validate docker-compose.yml against the compose spec
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

alerts-check: ## promtool: check the alerting rules, run their unit tests, check prometheus.yml
	@command -v $(PROMTOOL) >/dev/null \
		|| { echo "error: $(PROMTOOL) not found (Debian/Ubuntu: apt-get install prometheus)" >&2; exit 1; }
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts.test.yml
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml

# --- performance (on demand; never part of check) -----------------------------------

bench: $(STAMP) ## Benchmark harness: baseline vs guard GET and batch (needs wrk), ns/op, memory, capacity, fleet
	$(BIN)/python -m bench.run $(BENCH_ARGS)

soak: $(STAMP) ## Soak: guard under load while the simulator flaps and injects faults (SOAK_ARGS=...)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# --- maintenance ----------------------------------------------------------------------

lock: $(STAMP) ## Regenerate requirements/*.lock from pyproject.toml with uv (LOCK_FLAGS=--upgrade to bump)
	@[ -x $(BIN)/uv ] && [ "$$($(BIN)/uv --version | cut -d' ' -f2)" = "$(UV_VERSION)" ] \
		|| $(BIN)/python -m pip install --disable-pip-version-check --no-input 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 $(LOCK_FLAGS) -o requirements/runtime.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 $(LOCK_FLAGS) -o requirements/dev.lock

image: ## Build the container image (needs a Docker engine)
	docker build -t $(IMAGE) .

image-test: $(STAMP) ## Build the image on a private dockerd (no registry) and run it against the simulator
	$(BIN)/pytest tests/integration/test_image.py -p no:cacheprovider $(PYTEST_ARGS)

up: ## docker compose up: simulator + guard + Prometheus + Grafana (needs a Docker engine)
	docker compose up --build

down: ## docker compose down
	docker compose down

clean: ## Remove caches, coverage and build output (keeps .venv)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .hypothesis htmlcov build dist var/demo
	rm -f .coverage .coverage.* coverage.xml
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV) *.egg-info
