#!/usr/bin/env bash
# Installs the official Twilio helper libraries that the e2e flow scripts drive:
#   tests/helper-libs/python/.venv      twilio (PyPI), pinned in requirements.txt
#   tests/helper-libs/node/node_modules twilio (npm), pinned by package-lock.json
#   examples/node/node_modules          the same, for the node:test example (examples/)
#   and, in the same venv, the tools the test command uses on openapi.yaml (PyYAML,
#   openapi-spec-validator), and pytest for examples/python.
# Idempotent and fast when already done: the venv is only (re)installed when
# requirements.txt changed, node_modules only when it is missing or older than
# package-lock.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY_DIR="$ROOT/tests/helper-libs/python"
NODE_DIR="$ROOT/tests/helper-libs/node"
VENV="$PY_DIR/.venv"
VENV_PY="$VENV/bin/python"

log() { printf 'setup-helper-libs: %s\n' "$*"; }
die() { printf 'setup-helper-libs: error: %s\n' "$*" >&2; exit 1; }

# ---- python -----------------------------------------------------------------
command -v python3 >/dev/null || die "python3 not found (needed for the twilio-python venv)"
[[ -f "$PY_DIR/requirements.txt" ]] || die "missing $PY_DIR/requirements.txt"

# The venv is (re)installed whenever requirements.txt differs from what it was built from.
stamp="$VENV/requirements.installed"
if [[ -x "$VENV_PY" ]] && ! "$VENV_PY" -c 'import sys' >/dev/null 2>&1; then
  log "venv at $VENV is broken (its python does not run); recreating it"
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV_PY" ]]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$PY_DIR/requirements.txt"; then
  log "python: requirements already installed ($("$VENV_PY" -c 'import importlib.metadata as m; print("twilio", m.version("twilio"))'))"
else
  log "python: installing $PY_DIR/requirements.txt"
  "$VENV_PY" -m pip install --disable-pip-version-check --no-input -q -r "$PY_DIR/requirements.txt" \
    || die "pip install -r $PY_DIR/requirements.txt failed"
  cp "$PY_DIR/requirements.txt" "$stamp"
  log "python: $("$VENV_PY" -c 'import importlib.metadata as m; print("twilio", m.version("twilio"))') installed"
fi

# ---- node -------------------------------------------------------------------
command -v node >/dev/null || die "node not found (needed for twilio-node)"
command -v npm >/dev/null || die "npm not found (needed for twilio-node)"

# npm writes node_modules/.package-lock.json on every install: it marks when node_modules was laid.
npm_ci() {
  local dir="$1" marker="$1/node_modules/.package-lock.json" have
  [[ -f "$dir/package-lock.json" ]] || die "missing $dir/package-lock.json"
  if [[ -f "$marker" && ! "$dir/package-lock.json" -nt "$marker" ]]; then
    log "node: $dir up to date ($(cd "$dir" && node -p 'require("twilio/package.json").version' 2>/dev/null || echo '?'))"
    return
  fi
  log "node: running npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund) || die "npm ci failed in $dir"
  touch "$marker"
  have="$(cd "$dir" && node -p 'require("twilio/package.json").version')" || die "node: twilio does not load after npm ci in $dir"
  log "node: twilio $have installed in $dir"
}
npm_ci "$NODE_DIR"
npm_ci "$ROOT/examples/node"

log "done"
