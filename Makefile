# The two commands the README starts with: `make run` and `make test`.
# Both create .venv on first use, so a fresh machine needs only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install run test lint bench bench-quick
install: $(STAMP)

run: $(STAMP)
	$(BIN)/pushwoosh-fleet run

test: $(STAMP)
	bash scripts/ensure-redis.sh
	bash scripts/ensure-browser.sh
	$(BIN)/ruff check --no-cache .
	$(BIN)/mypy config ingest worker fleet
	$(BIN)/python -m pytest -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check .
	$(BIN)/mypy config ingest worker fleet

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick
