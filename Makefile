# The two commands the README starts with: `make run` and `make test`.
# Both create .venv on first use, so a fresh machine needs only Python >= 3.11 and make.
# PYTHON: the first of python3, python3.11, python3.12, python3.13 that is 3.11 or newer.
PYTHON ?= $(shell for p in python3 python3.11 python3.12 python3.13; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := config store telemetry ingest worker fleet
# Test files run in this many processes: most integration tests wait on real processes and
# sockets, so three share two cores well. A file's tests stay in one process (its fleet is shared).
TEST_PROCESSES ?= 3

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "need Python 3.11 or newer on PATH (or: make PYTHON=/path/to/python ...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install run test unit lint bench bench-quick
install: $(STAMP)

run: $(STAMP)
	$(BIN)/pushwoosh-fleet run

# The guards first (each one fast), then every test.
test: $(STAMP) lint
	bash scripts/ensure-debian-packages.sh faketime redis-server
	bash scripts/ensure-redis.sh
	bash scripts/ensure-rabbitmq.sh
	bash scripts/ensure-browser.sh
	bash scripts/ensure-promtool.sh
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_PROCESSES) --dist loadfile

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check --no-cache .
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick
