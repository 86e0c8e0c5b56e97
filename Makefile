# Two commands for a newcomer: `make demo` and `make test`.
# Both create .venv on first use and reuse it afterwards (re-installing only when pyproject.toml changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format dev bench mutation clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dev: $(STAMP)
	$(BIN)/hub dev

# The hub against the COPY floor and dlt (bench/README.md): hours on two cores. One section, e.g.
# `$(BIN)/python -m bench --only load --sizes 10000`; dlt comes with the bench extra.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# Mutation testing of the import's core: the loader, the Zoho changed-records walk, the sync
# bookkeeping, the audit and the schedules. Slow (tens of minutes on two cores), so not part of
# `make test`. Narrow it with e.g. `make mutation MUTANTS='hub_pipelines.imports.audit.*'`; read
# the outcome with `$(BIN)/mutmut results` and `$(BIN)/mutmut show NAME` (state kept in mutants/,
# so a second run re-tries only what changed). The tests run on one embedded PostgreSQL server
# for the whole run (in .hub/mutation), not one per mutant.
MUTATION_HOME := $(CURDIR)/.hub/mutation
WALK := hub_pipelines.zoho_books.connector
MUTANTS ?= hub_pipelines.warehouse.loader.* hub_pipelines.imports.sync.* \
	hub_pipelines.imports.audit.* hub_pipelines.imports.schedules.* \
	$(WALK).*_changed_pages* $(WALK).*_fetch_and_map* $(WALK).*_Walk* $(WALK).*_valid_rows* \
	$(WALK).*_row_time* $(WALK).*_earliest* $(WALK).*params_since* $(WALK).*zoho_timestamp*

mutation: $(STAMP)
	@export HUB_HOME=$(MUTATION_HOME); unset HUB_DATABASE_URL DATABASE_HOST; \
	$(BIN)/hub db start >/dev/null || exit 1; \
	HUB_TEST_DATABASE_URL="$$($(BIN)/hub db url)" $(BIN)/mutmut run $(foreach m,$(MUTANTS),'$(m)'); \
	status=$$?; $(BIN)/hub db stop >/dev/null; $(BIN)/mutmut results; exit $$status

clean:
	-$(BIN)/hub db stop
	rm -rf $(VENV) .hub
