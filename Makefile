# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Pinned dev and lint tools (README: "Bumping the dev tools").
DEV_CONSTRAINTS := .ci/dev-constraints.txt

.PHONY: demo test lint typecheck docs unit foreign foreign-prepare browser browser-prepare conformance conformance-pyvoy conformance-prepare soak bench bench-micro bench-profile bench-tools clean

$(STAMP): pyproject.toml $(DEV_CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip -c $(DEV_CONSTRAINTS)
	$(PY) -m pip install --quiet -e '.[dev]' -c $(DEV_CONSTRAINTS)
	touch $(STAMP)

# `make demo PORT=8001` when 8000 is taken.
PORT = 8000

demo: $(STAMP)
	$(PY) -m examples.bookstore --port $(PORT)

test: lint typecheck docs conformance-prepare foreign-prepare browser-prepare unit conformance

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

# The docs site (mkdocs.yml) from docs/ and the docstrings, warnings as errors, into build/site:
# open build/site/index.html. `$(PY) -m mkdocs serve` serves it with live reload.
# NO_MKDOCS_2_WARNING: Material for MkDocs prints its end-of-life notice (May 2027; Zensical
# succeeds it) on every build; README.md, "Documentation", says so once. No --quiet: it hides
# the warnings from --strict too, and the build passes with them.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

unit: $(STAMP)
	$(PY) -m pytest -q

# Installs the connect-es clients of the foreign-client tests (`npm ci` in tests/foreign/node;
# skips without Node, except under CI=true), so that pytest runs tests/foreign with them.
foreign-prepare: $(STAMP)
	$(PY) tests/foreign/run.py --prepare-only

# The foreign-client tier alone: connect-es and grpcio against a real Hypercorn.
foreign: $(STAMP)
	$(PY) tests/foreign/run.py

# Installs Chromium (apt-get, when it is missing and we are root) and the browser test's Node
# project (`npm ci` in tests/browser/node; skips without them, except under CI=true), so that
# pytest runs tests/browser with them.
browser-prepare: $(STAMP)
	$(PY) tests/browser/run_browser.py --prepare-only

# The browser tier alone: connect-web in headless Chromium, calling across origins.
browser: $(STAMP)
	$(PY) tests/browser/run_browser.py

# Installs the pinned runner and generates the conformance protos (skips without Go, except
# under CI=true), so the harness tests in pytest run against the generated code.
conformance-prepare: $(STAMP)
	$(PY) conformance/run.py --prepare-only

conformance: $(STAMP)
	$(PY) conformance/run.py

# Mixed load on a real `connectpy serve` (tests/soak/soak.py), never part of `make test`:
# fails on any error or RSS growth over 5 %. `make soak SOAK_MINUTES=2` for a short run.
SOAK_MINUTES ?= 10
SOAK_CONCURRENCY ?= 64

soak: $(STAMP)
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_CONCURRENCY=$(SOAK_CONCURRENCY) $(PY) tests/soak/soak.py

# The same suite with connectpy on pyvoy (Envoy) instead of Hypercorn; not part of `make test`.
# Two servers at a time: each starts Envoy and a Python inside it, which takes seconds on a busy
# machine, and four at once overran the runner's wait for a server to answer.
conformance-pyvoy: $(STAMP)
	$(PY) -m pip install --quiet pyvoy -c $(DEV_CONSTRAINTS)
	CONFORMANCE_ON=pyvoy $(PY) conformance/run.py --max-servers 2

# Benchmarks (docs/performance.md): a separate venv with the peers, never part of `make test`.
BENCH_VENV := benchmarks/.venv
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?=

$(BENCH_STAMP): pyproject.toml benchmarks/requirements.txt
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $(BENCH_STAMP)

# connectrpc 0.13 and connect-python 0.9 install the same package: its rows get their own venv.
BENCH13_VENV := benchmarks/.venv-connectrpc
BENCH13_STAMP := $(BENCH13_VENV)/.installed

$(BENCH13_STAMP): pyproject.toml benchmarks/requirements-connectrpc.txt
	test -x $(BENCH13_VENV)/bin/python || $(PYTHON) -m venv $(BENCH13_VENV)
	$(BENCH13_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH13_VENV)/bin/python -m pip install --quiet -e . -r benchmarks/requirements-connectrpc.txt
	touch $(BENCH13_STAMP)

bench-tools:
	command -v h2load >/dev/null || (apt-get update && apt-get install -y nghttp2-client)
	command -v taskset >/dev/null || (apt-get update && apt-get install -y util-linux)

# Every row and case, 3 interleaved repetitions of 5 s a cell (about 20 minutes):
# writes benchmarks/results/DATE.md. Narrow it with e.g. BENCH_ARGS="--server hypercorn".
bench: $(BENCH_STAMP) $(BENCH13_STAMP) bench-tools
	$(BENCH_PY) -m benchmarks.run $(BENCH_ARGS)

bench-micro: $(BENCH_STAMP)
	$(BENCH_PY) -m pytest benchmarks/micro -p no:cacheprovider -q \
		-o python_files='bench_*.py' -o python_functions='bench_*' \
		--benchmark-columns=min,median,mean,ops,rounds --benchmark-sort=name $(BENCH_ARGS)

bench-profile: $(BENCH_STAMP) bench-tools
	$(BENCH_PY) -m benchmarks.profile $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(BENCH13_VENV) build conformance/gen tests/foreign/node/node_modules \
		tests/foreign/node/gen tests/browser/node/node_modules tests/browser/node/gen
