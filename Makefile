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

# Optional: the e2e benchmark compares against nginx (as upstream and as TLS proxy) when present
# and falls back to its own upstream, skipping the nginx comparison, when it is not.
nginx:
	@command -v nginx >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1 || { \
	  echo "installing nginx with apt-get (optional)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1; } || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 || \
	  echo "nginx not installed: benchmarks/e2e runs without the nginx comparison"; }

demo: build
	$(PY) -m fastgate.demo

test: build redis-server
	$(VENV)/bin/ruff check fastgate tests benchmarks
	$(PY) -m pytest -q -x --timeout=300 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check fastgate tests benchmarks

# e2e: ~2.5 min of load (run.py, with a 10 s py-spy/perf profile) + ~1.5 min of 10k idle TLS
# connections (idle_conns.py); BENCH_ARGS / IDLE_ARGS pass options, e.g. BENCH_ARGS="--duration 5".
bench: build wrk nginx
	@$(PY) -c "import shutil, sys; sys.exit(shutil.which('py-spy', path='$(VENV)/bin') is None)" 2>/dev/null || \
	  $(PIP) install -q py-spy || echo "py-spy not installed: the profile is skipped"
	$(PY) -m pytest -q benchmarks/micro --benchmark-columns=min,mean,ops
	PATH="$$PATH:/usr/sbin" $(PY) benchmarks/e2e/run.py --profile 10 $(BENCH_ARGS)
	PATH="$$PATH:/usr/sbin" $(PY) benchmarks/e2e/idle_conns.py $(IDLE_ARGS)

FUZZ_SECONDS ?= 300
fuzz: build   ## a long run of every atheris target (make test runs each for a few seconds)
	@for f in tests/fuzz/fuzz_*.py; do echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  $(PY) $$f -max_total_time=$(FUZZ_SECONDS) || exit 1; done

clean:
	rm -rf build $(VENV) .demo fastgate/_native/*.c fastgate/_native/*.so *.egg-info .hypothesis .benchmarks
