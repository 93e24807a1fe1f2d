# Two commands set everything up: `make test` and `make lab` (or `make demo`).
# Both create .venv on first use and install the package with its development extras.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# A CPU-only torch wheel when the machine keeps one on disk (no multi-GB CUDA build on a CPU box);
# otherwise whatever pip resolves for "torch>=2.1".
TORCH  ?= $(firstword $(wildcard /opt/wheels/torch-*+cpu-*.whl) torch>=2.1)

.PHONY: test test-fast lab demo notebooks lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

test: $(VENV)/.installed
	$(PY) -m ruff check ddfm_edu tests benchmarks scripts notebooks
	MPLBACKEND=Agg $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

# The quick loop while editing: ruff and the tests not marked slow, no notebooks.
test-fast: $(VENV)/.installed
	$(PY) -m ruff check ddfm_edu tests benchmarks scripts notebooks
	MPLBACKEND=Agg $(PY) -m pytest tests -m "not slow" -p no:cacheprovider

lab: $(VENV)/.installed
	$(VENV)/bin/jupyter lab notebooks

demo: $(VENV)/.installed
	$(VENV)/bin/ddfm-edu demo

# Re-execute every notebook in place (outputs committed, widget state stripped).
notebooks: $(VENV)/.installed
	$(PY) scripts/execute_notebooks.py notebooks/*.ipynb

lint: $(VENV)/.installed
	$(PY) -m ruff check ddfm_edu tests benchmarks scripts notebooks

bench: $(VENV)/.installed
	for f in benchmarks/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
