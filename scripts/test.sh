#!/usr/bin/env bash
# Runs the whole test suite. pytest's own exit code is the result.
set -euo pipefail
PY=${PY:-.venv/bin/python}
exec "$PY" -m pytest "$@"
