#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis for the test suite, on free loopback ports.
# Source it, then `start_test_services` (exports DATABASE_URL, REDIS_URL and PG_ADMIN_URL)
# and `stop_test_services` (stops both and deletes their files; safe to call twice).
# PostgreSQL is Debian's package; its cluster is created by initdb in a temporary folder and run
# by an unprivileged user (nobody when run as root, else the caller), trust auth on loopback only,
# without durability (fsync off): it lives for one test run.

_free_port() {
  "${PY:-python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $dir && -x $dir/initdb ]] || { echo "no PostgreSQL server binaries (apt: postgresql)" >&2; return 1; }
  echo "$dir"
}

# Runs a command as the unprivileged owner of the cluster.
_as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u nobody -- "$@"; else "$@"; fi
}

start_test_services() {
  local bin pg_port redis_port
  bin=$(_pg_bin) || return 1
  command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; return 1; }
  TEST_SERVICES_DIR=$(mktemp -d /tmp/stepwell-services.XXXXXX)
  chmod 755 "$TEST_SERVICES_DIR"
  mkdir -p "$TEST_SERVICES_DIR/pg" "$TEST_SERVICES_DIR/redis"
  [[ $(id -u) -ne 0 ]] || chown nobody: "$TEST_SERVICES_DIR/pg"

  pg_port=$(_free_port)
  # One line: pg_ctl hands these to a shell command line.
  local pg_opts="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c timezone=UTC"
  _as_pg_user "$bin/initdb" -D "$TEST_SERVICES_DIR/pg/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$TEST_SERVICES_DIR/pg/initdb.log" 2>&1 \
    || { cat "$TEST_SERVICES_DIR/pg/initdb.log" >&2; return 1; }
  _as_pg_user "$bin/pg_ctl" -D "$TEST_SERVICES_DIR/pg/data" -l "$TEST_SERVICES_DIR/pg/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $pg_port -k $TEST_SERVICES_DIR/pg $pg_opts" start >/dev/null \
    || { cat "$TEST_SERVICES_DIR/pg/server.log" >&2; return 1; }
  TEST_PG_CTL="$bin/pg_ctl"
  "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres stepwell

  redis_port=$(_free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --databases 64 \
    --dir "$TEST_SERVICES_DIR/redis" --logfile "$TEST_SERVICES_DIR/redis/server.log" &
  TEST_REDIS_PID=$!
  local i
  for i in $(seq 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start" >&2; return 1; }

  export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/stepwell"
  export PG_ADMIN_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  export REDIS_URL="redis://127.0.0.1:$redis_port/0"
  echo "==> PostgreSQL $(basename "$(dirname "$bin")") on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
}

stop_test_services() {
  if [[ -n ${TEST_REDIS_PID:-} ]]; then
    kill "$TEST_REDIS_PID" 2>/dev/null || true
    wait "$TEST_REDIS_PID" 2>/dev/null || true
    TEST_REDIS_PID=""
  fi
  if [[ -n ${TEST_PG_CTL:-} && -d ${TEST_SERVICES_DIR:-}/pg/data ]]; then
    _as_pg_user "$TEST_PG_CTL" -D "$TEST_SERVICES_DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
    TEST_PG_CTL=""
  fi
  if [[ -n ${TEST_SERVICES_DIR:-} ]]; then
    rm -rf "$TEST_SERVICES_DIR"
    TEST_SERVICES_DIR=""
  fi
}
