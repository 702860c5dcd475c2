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
STAMP := $(VENV)/.installed.stamp
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
# Debian's `prometheus` package ships it (.ci/run installs it).
PROMTOOL ?= promtool

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# A task runner, not a build graph: run prerequisites one by one, in the
# order written, so `check` fails fast at the first broken step.
.NOTPARALLEL:
.DELETE_ON_ERROR:

.PHONY: help venv run check lint fmt typecheck test openapi openapi-check \
	container-lint alerts-check lock image up down clean distclean bench soak

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

$(STAMP): $(BIN)/python pyproject.toml requirements/dev.lock requirements/runtime.lock \
		clients/python/pyproject.toml
	$(BIN)/python -m pip install --disable-pip-version-check --no-input -r requirements/dev.lock
	$(BIN)/python -m pip install --disable-pip-version-check --no-input --no-deps -e .
	# The bot client (its own distribution; its only dependency, httpx, is in the lock).
	$(BIN)/python -m pip install --disable-pip-version-check --no-input --no-deps \
		-e ./clients/python
	@touch $@

venv: $(STAMP) ## Create/refresh .venv (only when pyproject.toml or a lock changed)

# --- run --------------------------------------------------------------------------

run: $(STAMP) ## Run the demo: simulator + guard on loopback, prints curl examples (Ctrl-C stops)
	$(BIN)/python scripts/run_demo.py

# --- checks -------------------------------------------------------------------------

check: venv lint typecheck test openapi-check container-lint alerts-check ## Run every check (what .ci/run runs), failing fast

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

bench: $(STAMP) ## Benchmark harness: baseline vs guard GET and batch (needs wrk), ns/op, memory, capacity
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
