#!/usr/bin/env bash
# The project's test command: ruff, mypy (strict) and pytest, from the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
[ -x "$BIN/python" ] || BIN=$(dirname "$(command -v python3)")
"$BIN/python" -m ruff check .
"$BIN/python" -m ruff format --check .
"$BIN/python" -m mypy
"$BIN/python" -m pytest -q "$@"
