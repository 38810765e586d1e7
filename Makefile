# Strix Data Protection — developer entry points. `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format services env db venv bench clean

demo: venv services env db  ## install, bring up services, seed demo data, run web+worker+beat+flower
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup --rows 100000
	@echo "Admin: http://127.0.0.1:8000/admin/   Flower: http://127.0.0.1:5555/   (Ctrl-C stops all)"
	$(BIN)/honcho start

test: venv services env  ## the whole test suite against the real services, lint included
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

services:
	bash scripts/services.sh

env: venv
	$(BIN)/strix-setup --install --dir . --dev

db: env  ## the database DATABASE_URL (or STRIX_POSTGRES_*) names, created if missing
	$(BIN)/python scripts/create_database.py

bench: venv services env db  ## benchmarks against the native tools (minutes; not part of make test)
	$(BIN)/python manage.py migrate --noinput
	cd bench && ../$(BIN)/python seed.py
	cd bench && ../$(BIN)/python envelope.py
	cd bench && ../$(BIN)/python archive.py --rows 1000000
	cd bench && ../$(BIN)/python archive.py --rows 5000000
	cd bench && ../$(BIN)/python archive.py --synthetic --rows 5000000
	cd bench && ../$(BIN)/python backup.py
	cd bench && ../$(BIN)/python search.py --rows 1000000
	cd bench && ../$(BIN)/python scale.py
	cd bench && ../$(BIN)/python archive.py --rows 20000000 --repeat 1 --ours-only

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
