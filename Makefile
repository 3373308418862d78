# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# Test processes (pytest-xdist), a file per process at a time so module fixtures are built once;
# CI has 2 cores. TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2

.PHONY: demo test lint bench clean

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

# One classifier seed in the demo's report (the default 3 add a minute to its 11).
demo: $(STAMP)
	$(VENV)/bin/genodiff run --out $(DEMO_OUT) --seeds 1

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

lint: $(STAMP)
	$(VENV)/bin/ruff check genodiff_jax tests experiments benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_prepare.py
	$(VENV)/bin/genodiff bench --config experiments/demo.py --genes 128 --classes 3 --what sample \
	    --sampler ancestral,ddim,dpmpp --n 256 --steps 25 --repeats 3 \
	    --json runs/bench/sampling_demo_cpu.json
	PATH="$(abspath $(VENV))/bin:$$PATH" bash benchmarks/bench_cpu.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
