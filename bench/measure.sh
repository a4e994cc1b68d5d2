#!/usr/bin/env bash
# Runs the measurement matrix of BENCHMARKS.md: every scenario on SQLite and PostgreSQL, on an
# empty database (with a second pass at 50 % of the peak rate) and with 1,000,000 prefilled
# challenges. Results (text and JSON) go to bench/results/<UTC time>/. About 30 minutes on
# 2 cores.
#
#   bench/measure.sh                       # the server built from this tree
#   SERVER_BIN=/path/to/verify-push-server bench/measure.sh
#   DURATION=20 PREFILL_DURATION=15 bench/measure.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION="${DURATION:-20}"
PREFILL_DURATION="${PREFILL_DURATION:-15}"
PREFILL="${PREFILL:-1000000}"
OUT="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

if [ -n "${SERVER_BIN:-}" ]; then
  cargo build --release -p verify-push-bench
  ARGS=(--no-build --server-bin "$SERVER_BIN")
else
  cargo build --release -p verify-push-bench -p verify-push-server
  ARGS=(--no-build)
fi
BENCH=target/release/verify-push-bench

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: ${SERVER_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
  echo "server: ${SERVER_BIN:-target/release/verify-push-server}"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  grep -m1 MemTotal /proc/meminfo || true
  uname -r
  psql -h 127.0.0.1 -U postgres -Atc 'SELECT version()' 2>/dev/null || true
} | tee "$OUT/machine.txt"

run() {
  local name="$1"; shift
  echo "==> $name: $*"
  echo "$name start: $(cut -d' ' -f1-3 /proc/loadavg) (load average before)" >>"$OUT/load.txt"
  local status=0
  "$BENCH" "$@" "${ARGS[@]}" --json >"$OUT/$name.json" 2> >(tee "$OUT/$name.txt" >&2) || status=$?
  echo "$name end: $(cut -d' ' -f1-3 /proc/loadavg), exit $status" >>"$OUT/load.txt"
  FAILED=$((FAILED + (status != 0)))
}

# One bench process per scenario (and, with --prefill, one prefilled database each): a bench
# process that had just held device-approve's pool of signed answers (hundreds of MB) measured
# the next scenario's server up to 30 % slower (BENCHMARKS.md, "What bounds the figures now").
SCENARIOS=(create-challenge device-approve device-poll full-flow enroll)
FAILED=0
for db in sqlite postgres; do
  for s in "${SCENARIOS[@]}"; do
    run "$db-empty-$s" "$s" --database "$db" --duration "$DURATION" --half-load
  done
done
for db in sqlite postgres; do
  for s in "${SCENARIOS[@]}"; do
    run "$db-prefill-$s" "$s" --database "$db" --duration "$PREFILL_DURATION" --prefill "$PREFILL"
  done
done
echo "results in $OUT ($FAILED runs failed)"
[ "$FAILED" -eq 0 ]
