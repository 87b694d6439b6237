# schedwatch: `make run` for one tracking cycle, `make demo` to see one offline, `make test`
# for the whole suite, `make test-fast` for the edit-test loop.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs what the tool needs, `make test` adds the test extra.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run demo test test-fast check lint typecheck soak bench bench-instructions browser postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/schedwatch run

# The project's own fixtures of all three jurisdictions served on 127.0.0.1: a baseline,
# then a cycle with a change. No network. DEMO_DIR is where its data and site go.
DEMO_DIR ?= data/demo
demo: $(RUN_STAMP)
	$(BIN)/python -m scheduler.demo --data-dir $(DEMO_DIR)

# Chromium for the browser tests: installed when this machine lets us (root + apt), skipped
# with a clear reason by the tests otherwise.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: could not install chromium; browser tests will skip"; \
	fi

# The PostgreSQL server binaries (initdb, pg_ctl) for the tests that run the store on a
# throwaway cluster: Debian's `postgresql` when root + apt, else those tests skip with a reason.
postgres:
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		&& command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "note: could not install postgresql; PostgreSQL tests will skip"; \
	fi

lint: $(TEST_STAMP)
	$(BIN)/ruff check scrapers jurisdictions reports scheduler tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

check: lint typecheck

test: $(TEST_STAMP) browser postgres check
	$(BIN)/pytest -q -p no:cacheprovider

# No fault matrix, no soak, no browser: the edit-test loop (a minute, not the whole suite).
test-fast: $(TEST_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not soak and not browser" \
		--ignore=tests/faults/test_fault_matrix.py

soak: $(TEST_STAMP)
	SCHEDWATCH_SOAK_RUNS=500 $(BIN)/pytest -q -m soak -p no:cacheprovider

bench: $(TEST_STAMP)
	$(BIN)/python bench/run_all.py

# Instructions executed (valgrind's callgrind): steady where wall time drifts. AGAINST=REV
# counts another revision beside this tree, e.g. make bench-instructions AGAINST=HEAD~1; FULL=1
# also counts a whole new site (~5 more minutes a version); LENGTHS=5,20 counts only the
# incremental publish, on each length's store, and its growth per year of history; STEADY=1
# with it, on histories of the same substances at every length
bench-instructions: $(TEST_STAMP)
	$(BIN)/python bench/bench_instructions.py $(if $(AGAINST),--against $(AGAINST)) \
		$(if $(FULL),--full-rebuild) $(if $(LENGTHS),--lengths $(LENGTHS)) \
		$(if $(STEADY),--steady)

clean:
	rm -rf $(VENV) build *.egg-info
