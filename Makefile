# Two commands on a fresh machine: `make run` and `make test`.
# Everything else they need (virtualenv, pinned packages, npm servers, Chromium)
# is set up here, once, and skipped when already up to date.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NPM_STAMP := node_modules/.installed

.PHONY: run test chat bench package migrate clean

run: $(VENV)/.runtime
	$(PY) app.py

# Web Chat in your browser, with a live panel of what the bot stores (local only).
chat: $(VENV)/.runtime $(NPM_STAMP)
	$(PY) tools/chat.py

test: $(VENV)/.dev $(NPM_STAMP) chromium
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# This bot against a bare aiohttp handler, the docs' wiring and every store, over
# HTTP (about 20 minutes; not part of `make test`). Writes bench/results/latest.md.
bench: $(VENV)/.dev $(NPM_STAMP)
	$(PY) -m bench.run

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "The bot needs Python 3.11 or later; $(PYTHON) is " + sys.version.split()[0] + ". Run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt engine/pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e ./engine
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt engine/pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e ./engine
	touch $(VENV)/.runtime $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive Debian's Chromium (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $(if $(shell command -v sudo 2>/dev/null),sudo) apt-get update -qq && \
	  $(if $(shell command -v sudo 2>/dev/null),sudo) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
.PHONY: chromium

# Once, after upgrading from the earlier one-item-per-record layout: moves those records
# into their conversation's item (STORAGE and its settings come from the environment / .env).
migrate: $(VENV)/.runtime
	$(PY) tools/migrate.py

# The zip that `az webapp deploy --type zip` uploads (App Service installs requirements.txt).
package:
	$(PYTHON) tools/package.py

clean:
	rm -rf $(VENV) node_modules dist
