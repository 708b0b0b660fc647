# Two commands matter: `make demo` (render a real video) and `make test` (the whole suite).
# Both set up .venv on a fresh machine first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The PostgreSQL pass of the suite runs against this server when it answers (CI makes sure it does).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: install demo test test-sqlite test-postgres lint serve bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) manage.py migrate --noinput --verbosity 0
	@mkdir -p out
	$(PY) manage.py render "A paper boat sails down a rain-filled gutter at dusk. \
	It tumbles over a small waterfall into a storm drain and glides through glowing tunnels. \
	It emerges into a calm harbour at sunrise as gulls circle overhead." \
	  --duration 30 --strategy sentences --user demo --output out/demo.mp4 || exit 1
	@echo "The video is also in the workspace: run 'make serve' and log in as the user it prints (demo)."

# The whole suite: SQLite (embedded default) first, then the PostgreSQL-backed tests.
test: install
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: install
	$(PY) -m pytest -m "not postgres and not redis" $(PYTEST_ARGS)

# The service-backed tests (marked postgres or redis: real PostgreSQL, Redis, Celery workers), run with
# DATABASE_URL and REDIS_URL set. Skipped with a message when the servers do not answer, except under
# REQUIRE_SERVICES=1 (CI), where a missing server is a failure.
test-postgres: install
	@if $(PY) -c "import psycopg,redis; psycopg.connect('$(TEST_DATABASE_URL)', connect_timeout=3).close(); \
	    redis.Redis.from_url('$(TEST_REDIS_URL)', socket_connect_timeout=3).ping()" 2>/dev/null; then \
	  DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) SECRET_KEY=test-only-secret TASK_RUNNER=inprocess \
	  SECURE_SSL_REDIRECT=0 SECURE_COOKIES=0 \
	    $(PY) -m pytest -m "postgres or redis" $(PYTEST_ARGS); \
	elif [ "$$REQUIRE_SERVICES" = "1" ]; then \
	  echo "PostgreSQL ($(TEST_DATABASE_URL)) or Redis ($(TEST_REDIS_URL)) is not reachable and REQUIRE_SERVICES=1"; \
	  exit 1; \
	else \
	  echo "PostgreSQL or Redis is not reachable: the service-backed tests were skipped"; \
	fi

lint: install
	$(VENV)/bin/ruff check .

# The workspace at http://127.0.0.1:$(PORT) on the embedded default; prints how to log in.
# DEBUG=1 serves and reloads the static files; missing pages and crashes still show the project's own
# 404 and 500 pages (SHOW_DEBUG_ERROR_PAGES=1 make serve shows Django's technical pages instead).
serve: install
	$(PY) manage.py migrate --noinput --verbosity 0
	$(PY) manage.py serve_info --port $(PORT)
	DEBUG=$${DEBUG:-1} $(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) sora_controller.asgi:application

# Runs every benchmark under bench/ (PostgreSQL and Redis needed for pipeline, api and realtime;
# PostgreSQL and the redis-server binary for chaos, which runs its own Redis on port 6391)
# and rewrites the README's tables with the figures.
bench: install
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) bench/run_all.py

clean:
	rm -rf out var/bench-clips .pytest_cache
