#!/usr/bin/env bash
# Starts the sandbox service, the task worker and the ASGI server; stops all of them together.
set -euo pipefail
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
pids=()
cleanup() { trap - EXIT INT TERM; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$PY" manage.py sandbox_service & pids+=($!)
# The task worker (django-tasks database backend): runs workflow runs and step tests, fires schedule
# triggers and marks runs of dead workers failed. Woken through a unix datagram after each enqueue
# (STEPWELL_WAKE_SOCKET), so pickup does not wait for the poll interval (STEPWELL_WORKER_INTERVAL_MS).
"$PY" manage.py run_worker & pids+=($!)
"$PY" -m uvicorn designer.asgi:application --host "$HOST" --port "$PORT" --no-access-log & pids+=($!)
echo "==> Stepwell is starting on http://$HOST:$PORT/ (Ctrl+C stops it)"
wait -n "${pids[@]}"
