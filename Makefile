# The README's two commands are `make demo` and `make test`; CI runs `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck docs venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

## make demo: set up, load the demo care system into embedded SQLite, serve on 127.0.0.1:8000
demo: venv
	$(BIN)/joinedup demo up

## make test: set up, then lint, type-check and run the whole test suite
test: venv lint typecheck
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests benchmarks

typecheck: venv
	$(BIN)/mypy

## make docs: regenerate reference docs that are generated from code
docs: venv
	$(BIN)/typer joinedup.cli utils docs --name joinedup --title "joinedup command reference" --output docs/reference/cli.md

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
