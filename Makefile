VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every dependency pinned: what `make install` and CI install (refreshed by `make upgrade`).
LOCK := constraints.txt
PIP_VERSION := 26.3
COMPILE := $(VENV)/bin/pip-compile --quiet --extra all --strip-extras --no-emit-index-url \
	--no-emit-find-links --unsafe-package reembed --output-file $(LOCK)

.PHONY: install browser demo test lint chaos soak upgrade

$(STAMP): pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q -c $(LOCK) torch==2.13.0
	$(PY) -m pip install -q -c $(LOCK) -e ".[all]"
	$(PY) -m pip check
	touch $(STAMP)

# Debian's Chromium for the dashboard's browser test (Playwright drives it; no browser
# download). Installed where this user may (root or sudo), else the test says what to run.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	  else echo "note: install Debian's chromium for the dashboard test"; exit 0; fi; \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; } || \
	  echo "note: could not install chromium; the dashboard test will say so"; }

install: $(STAMP) browser

# Refresh the lock to the newest releases pyproject.toml allows, install them, run the suite.
upgrade: $(STAMP)
	$(COMPILE) --upgrade pyproject.toml constraints.in
	$(PY) -m pip install -q -c $(LOCK) -e ".[all]"
	$(PY) -m pip check
	$(MAKE) lint test

# The main job: the whole story on the embedded local stack, offline.
demo: $(STAMP)
	$(VENV)/bin/reembed demo

# The test suite; it starts Redis, MongoDB (wire server), Chroma and workers itself.
test: $(STAMP) browser
	$(PY) -m pytest

# The fault suite: kills workers and restarts services mid-build (CI runs it after `test`).
chaos: $(STAMP)
	$(PY) -m pytest tests/faults -p no:cacheprovider -v

# The soak: a 100,000-document build with a random fault every ~30 s, defaults (≤ 20 min, not CI).
soak: $(STAMP)
	$(PY) -m pytest tests/soak -p no:cacheprovider -v -s

# Style, types, and the layers of the package (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check reembed workers tests bench beat_schedule.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
