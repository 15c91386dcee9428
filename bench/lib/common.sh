# Shared shell helpers for bench/ scripts. Source it; it sets BENCH_DIR, REPO_DIR, BATON_BIN
# and a cleanup trap that kills every server started with start_server and runs CLEANUP_EXTRA.
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(dirname "$BENCH_DIR")"
if [ -z "${BATON_BIN:-}" ]; then
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then BATON_BIN="$CARGO_TARGET_DIR/release/baton"
  else BATON_BIN="$REPO_DIR/target/release/baton"; fi
fi
export BATON_BIN
[ -x "$BATON_BIN" ] || { echo "bench: no baton binary at $BATON_BIN (set BATON_BIN)" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n 4096 2>/dev/null || true
export PYTHONPATH="$BENCH_DIR/lib${PYTHONPATH:+:$PYTHONPATH}"

SERVER_PIDS=()
CLEANUP_EXTRA=()
WORK="$(mktemp -d /tmp/baton-bench.XXXXXX)"

bench_cleanup() {
  local rc=$?
  set +e
  for c in "${CLEANUP_EXTRA[@]}"; do eval "$c" >/dev/null 2>&1; done
  for p in "${SERVER_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "bench: work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
  exit $rc
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# start_server DB LOG: starts baton serve; sets SERVER_PID and PORT.
start_server() {
  local db="$1" log="$2"
  : >>"$log"
  local before; before=$(wc -l <"$log")
  RUST_LOG="${RUST_LOG:-warn}" "$BATON_BIN" serve --listen 127.0.0.1:0 --database-url "sqlite://$db" \
    </dev/null >>"$log" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  PORT=""
  for _ in $(seq 1 300); do
    PORT="$(tail -n +"$((before + 1))" "$log" | grep -o 'listening on http://[^ ]*' | tail -1 | sed 's/.*://')" || true
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench: baton serve exited:" >&2; tail -20 "$log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$PORT" ] || { echo "bench: baton serve did not report a port" >&2; return 1; }
}

stop_server() {
  local p="${1:-$SERVER_PID}"
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
