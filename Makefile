# schedwatch: `make run` for one tracking cycle, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck soak bench browser clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/schedwatch run

# Chromium for the browser tests: installed when this machine lets us (root + apt), skipped
# with a clear reason by the tests otherwise.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: could not install chromium; browser tests will skip"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check scrapers jurisdictions reports scheduler tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck

test: $(STAMP) browser check
	$(BIN)/pytest -q -p no:cacheprovider

soak: $(STAMP)
	SCHEDWATCH_SOAK_RUNS=500 $(BIN)/pytest -q -m soak -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
