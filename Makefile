# Two commands on a fresh machine: `make demo` and `make test`. Every install step lives here.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
PYX    := $(wildcard fastgate/_native/*.pyx)
STAMP  := $(VENV)/.installed
BUILT  := $(VENV)/.built

.PHONY: all demo test lint bench fuzz clean redis-server wrk build

all: build

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel "Cython>=3.0"
	$(PIP) install -q -e '.[test,bench]'
	touch $@

$(BUILT): $(STAMP) $(PYX) setup.py $(wildcard fastgate/_native/*.pxd)
	$(PY) setup.py -q build_ext --inplace
	touch $@

build: $(BUILT)

# The suite starts its own private redis-server on a free port; install it when missing.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

demo: build
	$(PY) -m fastgate.demo

test: build redis-server
	$(VENV)/bin/ruff check fastgate tests benchmarks
	$(PY) -m pytest -q -x --timeout=300 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check fastgate tests benchmarks

bench: build wrk
	$(PY) -m pytest -q benchmarks/micro --benchmark-columns=min,mean,ops
	$(PY) benchmarks/e2e/run.py

FUZZ_SECONDS ?= 300
fuzz: build   ## a long run of every atheris target (make test runs each for a few seconds)
	@for f in tests/fuzz/fuzz_*.py; do echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  $(PY) $$f -max_total_time=$(FUZZ_SECONDS) || exit 1; done

clean:
	rm -rf build $(VENV) .demo fastgate/_native/*.c fastgate/_native/*.so *.egg-info .hypothesis .benchmarks
