# Trident: `make demo` runs the main job on the built-in data, `make test` runs the whole test suite.
# Both create the environment first (uv, pinned by uv.lock); nothing needs installing by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
PY     := $(VENV)/bin/python
UV_VERSION := 0.13.8
DEMO_ARGS ?=
# Byte-code caches make imports (numba, dask, sklearn) several times faster on repeated runs.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: env triton-env bench-env demo test test-fast clean help

help:
	@echo "make demo   - set up and run the main job on the built-in synthetic data"
	@echo "make test   - set up and run the whole test suite"
	@echo "make env    - only create/update the environment (.venv)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

# Benchmark baselines (LightGBM, XGBoost, FastAPI, uvicorn): `make bench-env`, then `python -m bench ...`.
bench-env: $(UV)
	$(UV) sync --frozen --extra dev --extra bench --python $(PYTHON)

# The Triton server's own environment (NumPy 1.26 + onnxruntime + the nvidia-pytriton wheel); idempotent.
triton-env: env
	$(PY) -m engine.serve.tritonenv

demo: env triton-env
	$(VENV)/bin/trident run deploy.enabled=true $(DEMO_ARGS)

test: env triton-env
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest

test-fast: env triton-env
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -m "not slow"

clean:
	-$(VENV)/bin/trident serve --stop 2>/dev/null
	rm -rf runs mlruns mlflow.db .pytest_cache deployments
