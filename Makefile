# shopstream: `make demo` runs the pipeline end to end, `make test` is what CI runs.
# mypy checks what pyproject's [tool.mypy] files lists: the code, tests/ and bench/.
.PHONY: bootstrap demo test lint stack-up stack-down bench-peer

VENV := .venv/bin

bootstrap:
	scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/shopstream demo

test: bootstrap
	$(VENV)/ruff check .
	$(VENV)/mypy
	$(VENV)/pytest

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy

stack-up: bootstrap
	$(VENV)/shopstream stack up --postgres

stack-down:
	$(VENV)/shopstream stack down

# The benchmark's peer (bench/quix_peer.py) in its own environment: Quix Streams 3.28.1
# needs confluent-kafka < 2.13, this project pins 2.16.1.
bench-peer:
	python3 -m venv .venv-quix
	.venv-quix/bin/pip install -q -r bench/peer-requirements.txt
