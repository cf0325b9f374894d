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
if "$PY" manage.py help run_worker >/dev/null 2>&1; then "$PY" manage.py run_worker & pids+=($!); fi
"$PY" -m uvicorn designer.asgi:application --host "$HOST" --port "$PORT" --no-access-log & pids+=($!)
echo "==> Stepwell is starting on http://$HOST:$PORT/ (Ctrl+C stops it)"
wait -n "${pids[@]}"
