# The two-command front door: `make test` and `make demo`. Everything is set up from nothing but python3.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
# Extra requirements for an older Airflow whose own ranges admit releases that break it (what its constraints file
# would pin), e.g. AIRFLOW_PINS="fastapi<0.137 svcs<26 alembic<1.17" for 3.2.2; each one is quoted for the shell.
AIRFLOW_PINS ?=
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)
PYTEST_ARGS ?=

# The distributed Airflow (make cluster, make e2e-cluster) lives in its own venv, with Celery and Postgres drivers.
CLUSTER_VENV ?= .venv-cluster
CLUSTER_PY := $(CLUSTER_VENV)/bin/python

.PHONY: venv browser test lint typecheck unit e2e demo airflow bench clean cluster-venv cluster-deps cluster e2e-cluster

# The venv is rebuilt when pyproject.toml changes; uv is used when present, otherwise pip installs it.
$(VENV)/.installed: pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv; fi
	@UVBIN=$$(command -v uv || echo "$(PYTHON) -m uv"); \
	  $$UVBIN venv --quiet --allow-existing -p $(PYTHON) $(VENV) && \
	  $$UVBIN pip install --quiet -p $(PY) -e '.[test]' 'apache-airflow==$(AIRFLOW_VERSION)' $(foreach p,$(AIRFLOW_PINS),'$(p)')
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
	$(PY) -m pytest -m "not e2e and not cluster" $(PYTEST_ARGS)

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

$(CLUSTER_VENV)/.installed: pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv; fi
	@UVBIN=$$(command -v uv || echo "$(PYTHON) -m uv"); \
	  $$UVBIN venv --quiet --allow-existing -p $(PYTHON) $(CLUSTER_VENV) && \
	  $$UVBIN pip install --quiet -p $(CLUSTER_PY) -e '.[test,cluster]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@touch $@

cluster-venv: $(CLUSTER_VENV)/.installed

# Debian's postgresql (15) and redis-server, installed when missing; neither is started as a service.
cluster-deps:
	@bash dev/install_cluster_deps.sh

# A distributed Airflow on 127.0.0.1 (Celery, PostgreSQL, Redis, 2 schedulers, 2 triggerers, 2 workers) with the
# emulator; prints the UI URL, Ctrl-C stops everything.
cluster: cluster-venv cluster-deps
	$(CLUSTER_PY) dev/cluster.py

e2e-cluster: cluster-venv cluster-deps
	$(CLUSTER_PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .airflow .pytest_cache .mypy_cache .ruff_cache
