# Reservoir developer commands. `make run` serves the EC2 endpoint; `make test` runs every test.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JS_CLIENT := tests/clients/js
# euca2ools 3.4 with Python 3 patches, built from the shared client kit when it is beside the tree.
EUCA_SETUP := $(wildcard ../shared/clients/euca2ools/setup.sh)
EUCA := var/euca2ools
TEST_CLIENTS := $(if $(EUCA_SETUP),$(EUCA)/venv/bin/euca-version)
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k keypair -x'
PYTEST_ARGS ?=

.PHONY: install system run test test-fast bench clean

install: system $(VENV)/bin/reservoir $(JS_CLIENT)/node_modules/.installed

system:
	@scripts/install-system.sh

$(PY): | system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstalled only when the package metadata changes; the source itself is an editable install.
# xmlsec only from its wheel, which carries its own libxmlsec1 and the libxml2 of lxml's wheel: no
# Debian package is needed, and a source build against Debian's libxml2 would fail at import.
$(VENV)/bin/reservoir: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q --only-binary xmlsec -e '.[test,postgres]'
	@touch $@

$(JS_CLIENT)/node_modules/.installed: $(JS_CLIENT)/package.json $(JS_CLIENT)/package-lock.json | system
	cd $(JS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The stock image and this machine (host `local`) are registered once; both steps are idempotent.
run: install
	$(VENV)/bin/reservoir image install-stock
	$(VENV)/bin/reservoir host add-local
	@$(PY) -c 'from backend.config import load_config; print(f"Web console: {load_config().endpoint_url}/console/")'
	$(VENV)/bin/reservoir serve

$(EUCA)/venv/bin/euca-version: $(EUCA_SETUP) | system
	PYTHON=$(PYTHON) bash $(EUCA_SETUP) $(EUCA) >/dev/null

# The stock guest image is built first, while the network is at hand: the VM tests run the server
# inside a network namespace, where its Debian packages could not be downloaded.
test: install $(TEST_CLIENTS)
	@if test -f images/build_stock.py; then $(PY) images/build_stock.py; fi
	@url=$$(scripts/start-postgres.sh) && \
	echo "PostgreSQL for the tests: $$url" && \
	RESERVOIR_TEST_PG_URL=$$url $(PY) -m pytest -n 2 --durations=25 $(PYTEST_ARGS) tests/

# Quick feedback: no PostgreSQL, no live clients, no virtual machines.
test-fast: install
	$(PY) -m pytest -n 2 -m 'not vm and not postgres and not clients' $(PYTEST_ARGS) tests/

bench: install
	$(PY) benchmarks/bench_keypairs.py --processes 2

clean:
	-@scripts/stop-postgres.sh 2>/dev/null
	rm -rf $(VENV) var $(JS_CLIENT)/node_modules .install-stamp-* .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
