#!/usr/bin/env bash
# Starts the sandbox service, the task worker and the ASGI server; stops all of them together.
# With STEPWELL_TLS_CERT and STEPWELL_TLS_KEY (paths of PEM files: the certificate chain and its
# key), uvicorn serves HTTPS itself.
set -euo pipefail
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
tls=()
scheme=http
if [[ -n "${STEPWELL_TLS_CERT:-}${STEPWELL_TLS_KEY:-}" ]]; then
  for f in "${STEPWELL_TLS_CERT:-}" "${STEPWELL_TLS_KEY:-}"; do
    if [[ -z "$f" || ! -r "$f" ]]; then
      echo "STEPWELL_TLS_CERT and STEPWELL_TLS_KEY must both name readable PEM files (got '$f')" >&2
      exit 2
    fi
  done
  tls=(--ssl-certfile "$STEPWELL_TLS_CERT" --ssl-keyfile "$STEPWELL_TLS_KEY")
  scheme=https
fi
pids=()
cleanup() { trap - EXIT INT TERM; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$PY" manage.py sandbox_service & pids+=($!)
# The task worker (django-tasks database backend): runs workflow runs and step tests, fires schedule
# triggers and marks runs of dead workers failed. Woken through a unix datagram after each enqueue
# (STEPWELL_WAKE_SOCKET), so pickup does not wait for the poll interval (STEPWELL_WORKER_INTERVAL_MS).
"$PY" manage.py run_worker & pids+=($!)
"$PY" -m uvicorn designer.asgi:application --host "$HOST" --port "$PORT" --no-access-log "${tls[@]}" & pids+=($!)
echo "==> Stepwell is starting on $scheme://$HOST:$PORT/ (Ctrl+C stops it)"
wait -n "${pids[@]}"
