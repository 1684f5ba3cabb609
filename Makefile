# shopstream: `make demo` runs the pipeline end to end, `make test` is what CI runs.
.PHONY: bootstrap demo test lint stack-up stack-down

VENV := .venv/bin

bootstrap:
	scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/shopstream demo

test: bootstrap
	$(VENV)/ruff check .
	$(VENV)/mypy shopstream schemas producers consumers
	$(VENV)/pytest

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy shopstream schemas producers consumers

stack-up: bootstrap
	$(VENV)/shopstream stack up --postgres

stack-down:
	$(VENV)/shopstream stack down
