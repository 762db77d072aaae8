# The two-command front door: `make test` and `make demo`. Everything is set up from nothing but python3.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: venv browser test lint typecheck unit e2e demo airflow bench clean

# The venv is rebuilt when pyproject.toml changes; uv is used when present, otherwise pip installs it.
$(VENV)/.installed: pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv; fi
	@UVBIN=$$(command -v uv || echo "$(PYTHON) -m uv"); \
	  $$UVBIN venv --quiet --allow-existing -p $(PYTHON) $(VENV) && \
	  $$UVBIN pip install --quiet -p $(PY) -e '.[test]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@touch $@

venv: $(VENV)/.installed

# Debian's chromium for the browser test of the connection form (Playwright drives it; it never downloads one).
browser:
	@bash dev/install_chromium.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

unit: venv
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

e2e: venv browser
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

test: lint typecheck venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(PY) dev/demo.py

airflow: venv
	$(PY) dev/local_airflow.py

bench: venv
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .airflow .pytest_cache .mypy_cache .ruff_cache
