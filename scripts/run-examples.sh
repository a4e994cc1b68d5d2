#!/usr/bin/env bash
# Runs the examples of examples/ (pytest and node:test, README "Test controls") against the
# server binary, on SQLite and on PostgreSQL, as the README's test command does, so they never rot.
#
#   scripts/run-examples.sh [SERVER_BINARY]     default: target/debug/verify-push-server
#
# Needs scripts/setup-helper-libs.sh to have run (pytest in the helper venv, examples/node's
# packages). PostgreSQL: a database `verify_push_examples` is dropped and made again for each
# suite on the server of VERIFY_PUSH_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SERVER="$(realpath "${1:-target/debug/verify-push-server}")"
[[ -x "$SERVER" ]] || { echo "run-examples: no server binary at $SERVER (cargo build first)" >&2; exit 1; }
PG_URL="${VERIFY_PUSH_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
PG_BASE="${PG_URL%/*}"
VENV_PY=tests/helper-libs/python/.venv/bin/python

fresh_pg_database() {
  "$VENV_PY" - "$PG_URL" <<'PY'
import subprocess, sys
url = sys.argv[1]
for sql in ("DROP DATABASE IF EXISTS verify_push_examples WITH (FORCE)", "CREATE DATABASE verify_push_examples"):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True)
PY
}

export VERIFY_PUSH_SERVER="$SERVER"
for backend in sqlite postgres; do
  if [[ $backend == postgres ]]; then
    database="$PG_BASE/verify_push_examples"
  else
    database=""
  fi
  for suite in python node; do
    echo "run-examples: $suite on $backend"
    [[ $backend == postgres ]] && fresh_pg_database
    if [[ $suite == python ]]; then
      VERIFY_PUSH_DATABASE_URL="$database" "$VENV_PY" -m pytest -q -p no:cacheprovider examples/python
    else
      (cd examples/node && VERIFY_PUSH_DATABASE_URL="$database" node --test --test-reporter=spec)
    fi
  done
done
echo "run-examples: every example passed on SQLite and PostgreSQL"
