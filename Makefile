# Two set-up commands that work on a fresh machine:
#   make demo   creates .venv, installs negsample with faiss, runs `negsample demo`
#   make test   installs the test extras, runs ruff, mypy and pytest
# and, while working on the core (samplers, index, mining, filters, resume):
#   make test-fast   the core's tests in about a minute (no Ray, models, CLI or slow tests)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The CPU build of torch must be installed before anything that depends on torch,
# otherwise pip resolves an unpinned torch to the CUDA build (several GB).
TORCH_CPU := torch==2.13.0
LINT_PATHS := src tests $(wildcard benchmarks examples)
# The core's tests: samplers, the shared property suite, mine(), filters, validation,
# exclusions, slices, the golden digests, evaluation and the run store.
FAST_TESTS := $(addprefix tests/test_,api.py topk_random.py simans.py trisampler.py \
	resa2.py sampler_properties.py mining.py filters.py validation.py exclude.py \
	query_offset.py golden_outputs.py evaluation.py store.py)

.PHONY: demo test test-fast lint typecheck pytest bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[faiss]"
	touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install -q $(TORCH_CPU)
	$(PIP) install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/negsample demo

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

test-fast: $(VENV)/.dev
	HYPOTHESIS_PROFILE=fast $(VENV)/bin/pytest -q -m "not slow" $(FAST_TESTS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
