# Two entry points for a fresh machine: `make demo` and `make test` (README).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
# Cache nothing outside the repository.
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The editable install holds a compiled detrt.ops._cpu: a changed C++ source re-runs it (an incremental build).
CPU_EXT_SOURCES := $(wildcard plugins/CMakeLists.txt plugins/common/*.h plugins/cpu/*)

# torch is pinned to the local CPU wheel before the package: an open range lets pip pull a CUDA build.
$(VENV)/.installed: pyproject.toml CMakeLists.txt $(CPU_EXT_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,compile,cpu-plugins,bench,dev]"
	touch $@

.PHONY: demo test install
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/detrt demo

test: $(VENV)/.installed
	$(PY) -m pytest

# Benchmarks (benchmarks/run_all.py): the CPU suite; bench-gpu adds TensorRT where a GPU exists.
.PHONY: bench bench-gpu
bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

bench-gpu: $(VENV)/.installed
	$(PY) benchmarks/run_all.py --gpu
