VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint chaos

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the whole story on the embedded local stack, offline.
demo: $(STAMP)
	$(VENV)/bin/reembed demo

# The test suite; it starts Redis, MongoDB (wire server), Chroma and workers itself.
test: $(STAMP)
	$(PY) -m pytest

# The fault suite: kills workers and restarts services mid-build (CI runs it after `test`).
chaos: $(STAMP)
	$(PY) -m pytest tests/faults -p no:cacheprovider -v

# Style, types, and the layers of the package (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check reembed workers tests bench beat_schedule.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
