# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
OUT ?= demo-output

.PHONY: demo test system-packages install install-dev lint bench clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# a regular install (not editable) for people who only run upcurve; `make test` reinstalls it editable
	$(PY) -m pip install --quiet .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

## demo: simulate a sample company and run the whole pipeline on embedded DuckDB
demo: install
	$(VENV)/bin/upcurve demo --out $(OUT)

## lint: ruff, the layer contract and mypy on the core
lint: install-dev
	$(VENV)/bin/ruff check upcurve tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## system-packages: PostgreSQL's server binaries (the workspace tests start a throwaway server) and chromium (the
## browser tests), installed when missing
system-packages:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		echo "installing the PostgreSQL server (apt-get install postgresql) for the workspace tests"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@# Debian's chromium for the web's browser tests and `upcurve report --pdf` (never `playwright install`)
	@command -v chromium >/dev/null 2>&1 || { \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		echo "installing chromium (apt-get install chromium) for the browser tests"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## test: install what the tests need (system and Python packages), lint, and run the whole suite
test: system-packages install-dev lint
	# two test workers on two cores (one OpenMP thread each, or LightGBM's threads spin against each other);
	# a worker that runs out of tests takes some of the other's, so a long test at the end does not leave one idle
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -n 2 --dist worksteal

# the public churn dataset the churn benchmark rebuilds as a billing history ships inside the `bench` extra
$(VENV)/.bench: $(VENV)/.dev pyproject.toml
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

## bench: the benchmark of every hot path (not part of the test suite)
bench: $(VENV)/.bench
	$(PY) benchmarks/bench_run.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_workspace.py
	$(PY) benchmarks/bench_web.py
	$(PY) benchmarks/bench_plays.py
	$(PY) benchmarks/bench_simulate.py
	$(PY) benchmarks/bench_signals.py
	$(PY) benchmarks/bench_small.py
	$(PY) benchmarks/bench_engines.py
	$(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_backtest.py
	$(PY) benchmarks/bench_reasons.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_ranking.py
	$(PY) benchmarks/bench_telco.py
	$(PY) benchmarks/bench_pricing.py
	$(PY) benchmarks/bench_usage.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
