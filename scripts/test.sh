#!/usr/bin/env bash
# Runs the test suite on both databases the app supports:
#   1. everything on SQLite with the in-memory channel layer;
#   2. the API, engine (with its websocket tests), runtime and governance suites on a throwaway
#      PostgreSQL with channels-redis and the Redis cache (scripts/test-services.sh), without the
#      browser and libvirt tests, which exercise no database code of their own, and without the
#      schema fuzzer (named paths run it on both).
# Slow tests marked `once` (pytest.ini) run in the PostgreSQL run only, when both runs happen.
# Arguments go to pytest in both runs (paths given replace the default ones).
# STEPWELL_TEST_DATABASES="sqlite" or "postgresql" runs only one. Fails if either run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATABASES=${STEPWELL_TEST_DATABASES:-sqlite postgresql}
# The schema fuzzer (about 10 min here on PostgreSQL) runs on SQLite only unless named.
PG_SUITES=(tests/api tests/engine tests/runtimes tests/governance tests/agents --ignore=tests/api/test_openapi_fuzz.py)

has_paths=0
for a in "$@"; do [[ $a == tests* ]] && has_paths=1; done

header() { printf '\n==== %s ====\n' "$*"; }
status=0

if [[ " $DATABASES " == *" sqlite "* ]]; then
  header "tests on SQLite, in-memory channel layer"
  # tests marked `once` (slow, nothing SQLite-specific) run in the PostgreSQL run when it follows
  once=(); [[ " $DATABASES " == *" postgresql "* ]] && ((!has_paths)) && once=(-m "not once")
  (unset DATABASE_URL REDIS_URL; exec "$PY" -m pytest --durations=25 "${once[@]}" "$@") || status=1
fi

if [[ " $DATABASES " == *" postgresql "* ]]; then
  header "tests on PostgreSQL, channels-redis and Redis cache"
  # shellcheck source=scripts/test-services.sh
  source scripts/test-services.sh
  trap stop_test_services EXIT
  trap 'stop_test_services; exit 130' INT TERM
  if start_test_services; then
    paths=(); ((has_paths)) || paths=("${PG_SUITES[@]}")
    started=$SECONDS
    "$PY" -m pytest --durations=15 -m "not browser and not libvirt" "${paths[@]}" "$@" || status=1
    echo "==> PostgreSQL run took $((SECONDS - started)) s"
  else
    echo "could not start PostgreSQL and Redis" >&2
    status=1
  fi
  stop_test_services
fi

exit $status
