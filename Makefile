# Patron: `make run` serves a demo org on 127.0.0.1:8000 (PATRON_HOST, PATRON_PORT); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs (`make run`, `make shell`), and the test tools on top of it (`make test`).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
export PATRON_DATABASE_URL ?= sqlite:///./var/patron.db

.PHONY: run test unit install clean

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(RUN_STAMP)

var/secret_key:
	mkdir -p var
	$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(48))" > var/secret_key
	chmod 600 var/secret_key

run: $(RUN_STAMP) var/secret_key
	$(BIN)/patron db upgrade
	$(BIN)/patron org apply examples/demo-org.toml
	$(BIN)/patron demo examples/demo-org.toml
	@echo
	@echo "The patron command is $(BIN)/patron (or run 'make shell' for a shell with it on the PATH)."
	@echo "Serving on http://$${PATRON_HOST:-127.0.0.1}:$${PATRON_PORT:-8000} (docs at /docs, the member-care console at /console/); Ctrl-C stops it."
	@echo "Beside it, 'patron relay' delivers the orgs' events to their webhooks and brokers:"
	@echo "  its log: tail -f var/relay.log    its metrics: http://127.0.0.1:9464/metrics"
	@# The relay runs as long as the server does, and is stopped cleanly (TERM) when it ends.
	@# Ctrl-C (or a TERM) stops the server cleanly: its exit is not an error of make's.
	@PATRON_LOG_FORMAT="$${PATRON_LOG_FORMAT:-text}" $(BIN)/patron relay >>var/relay.log 2>&1 & relay=$$!; \
	  trap 'kill -TERM $$relay 2>/dev/null; wait $$relay' EXIT INT TERM HUP; \
	  PATRON_SECRET_KEY="$${PATRON_SECRET_KEY:-$$(cat var/secret_key)}" $(BIN)/patron serve; \
	  status=$$?; [ $$status -eq 0 ] || [ $$status -eq 130 ] || [ $$status -eq 143 ] || exit $$status

# A shell with .venv/bin first on the PATH (patron, python), in the checkout; exit to leave.
.PHONY: shell
shell: $(RUN_STAMP)
	@echo "patron is on the PATH here: try 'patron --help'. Exit to leave."
	@PATH="$(CURDIR)/$(BIN):$$PATH" PATRON_DATABASE_URL="$(PATRON_DATABASE_URL)" $${SHELL:-/bin/sh}

# The types first ([tool.mypy] in pyproject.toml: src/patron, strict over the domain), then the suite.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

# The unit layer alone (tests/unit: the rules on fakes and the reader, no app, no database), in
# seconds; its exhaustive tests (every region's numbers, any name) are left to `make test`, and
# schemathesis' pytest plugin, which only the contract's fuzzing uses, is not loaded.
unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:schemathesis tests/unit -m "not exhaustive"

# Faults and sustained load against real `patron serve` processes, on a private PostgreSQL
# cluster and SQLite files (stress/run.py), with schemathesis fuzzing, abusive callers (7-10),
# Citus operations under load (11-13), costly searches (14), sign-in floods and lockouts
# (15-16) and events delivered by real `patron relay` processes to webhooks and RabbitMQ
# (127.0.0.1:5672, guest/guest) through outages, failing sinks, kill -9 and a cut broker
# connection (17-20); about 45 minutes. STRESS_QUICK=1 shortens the soak and 17's outage.
.PHONY: stress
stress: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	@# Scenarios 11-13 run on a Citus cluster of their own, built from the workplace's Citus source.
	if [ -f ../shared/citus/build.sh ]; then bash ../shared/citus/build.sh || bash ../shared/citus/build.sh; fi
	$(BIN)/python stress/run.py

# Patron beside the ceiling of its own stack, on a throwaway PostgreSQL database (bench/run.py);
# prints one table of figures and ratios, with Citus rows beside the PostgreSQL ones when Citus is
# installed (BENCH_CITUS); about 4 minutes, up to 4 more waiting for a quiet machine. Then the events
# rows (bench/events.py: sinks' cost, the relay's catch-up, events' latency; needs RabbitMQ on
# 127.0.0.1:5672), 15 to 30 minutes more on 2 cores while the relay is slower than registrations;
# BENCH_EVENTS=0 leaves them out. Not part of `make test`.
# bench/python_path.py measures the Python of a batch alone (no HTTP, no database), for profiling.
.PHONY: bench
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var build *.egg-info src/*.egg-info
